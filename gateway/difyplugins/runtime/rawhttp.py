"""The inbound request as the raw HTTP/1.1 bytes a Dify plugin parses (`raw_http_request`).

What the plugin gets, unlike inside Dify: the query string exactly as the caller sent it (Dify
re-encodes and sorts it), the whole body (Dify cuts it at 10 MiB; ours is bounded by the
endpoint's body limit), and the caller's address in `X-Forwarded-For` and `X-Real-IP` (Dify strips
both). Those two headers, when the caller sent them, are replaced by the address the gateway saw
(after its trusted proxies), so a caller can't forge them. Header names containing `_` are dropped
(the SDK's parsers refuse them or fold them onto the `-` name), and so are the hop-by-hop headers;
`Content-Length` is set to the body's length (the body arrives whole, never chunked).

The bytes parse under every SDK generation: the split-based parser up to 0.10.0 and the h11 one
since 0.10.1, which refuses what HTTP/1.1 calls malformed (`dify_plugin.core.utils.http_parser`).
So a `Host` is always sent (an HTTP/1.0 caller may leave it out: the endpoint URL's host stands
in), bytes of the query that may not travel raw (non-ASCII, controls, space) are percent-encoded
(a server decodes them the same; the old parser would have mangled them), and a request the SDK
would fail on is the caller's 400 before the plugin is bothered: two `Host` or two
`Content-Type` headers, a header value that is not UTF-8. The console's
session cookie is taken out of `Cookie`.
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit

from gateway.console.cookie import COOKIE as CONSOLE_COOKIE
from gateway.exceptions import BadRequest
from gateway.plugin import Request

__all__ = ["DROPPED_HEADERS", "raw_request"]

DROPPED_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "content-length",
        "x-forwarded-for",
        "x-real-ip",
    }
)
_PATH_SAFE = "/:@!$&'()*+,;=-._~"
# Every printable ASCII character but space travels as sent; `%` too, so encoded bytes stay encoded.
_QUERY_SAFE = "".join(chr(c) for c in range(0x21, 0x7F))
_SINGLE = frozenset({"host", "content-type"})  # the SDK refuses a request with two of these


def _check_utf8(name: str, value: str) -> None:
    """The SDK decodes header values as UTF-8 (they arrive here latin-1 decoded, byte for byte)."""
    try:
        value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        raise BadRequest(f"the value of header {name!r} is not UTF-8") from None


def raw_request(request: Request) -> bytes:
    """`request` as HTTP/1.1 bytes: request line (path percent-encoded, raw query), headers, body.

    Raises:
        BadRequest: a request the SDK's parser would refuse (see the module's docstring).
    """
    target = quote(request.path, safe=_PATH_SAFE)
    if request.query_string:
        target += "?" + quote(request.query_string.encode("latin-1", errors="replace"), safe=_QUERY_SAFE)
    lines = [f"{request.method} {target} HTTP/1.1"]
    seen: set[str] = set()
    for name, value in request.headers.raw:
        if name in DROPPED_HEADERS or "_" in name or not name:
            continue
        if name in _SINGLE:
            if name in seen:
                raise BadRequest(f"the request has more than one {name!r} header")
            seen.add(name)
        _check_utf8(name, value)
        if name == "cookie" and not (value := _without_console_cookie(value)):
            continue
        lines.append(f"{name}: {value}")
    if "host" not in seen:
        lines.append(f"host: {urlsplit(request.endpoint_url).netloc or 'localhost'}")
    if request.client_ip:
        lines.append(f"x-forwarded-for: {request.client_ip}")
        lines.append(f"x-real-ip: {request.client_ip}")
    lines.append(f"content-length: {len(request.body)}")
    head = "\r\n".join(lines) + "\r\n\r\n"
    return head.encode("latin-1", errors="replace") + request.body


def _without_console_cookie(value: str) -> str:
    """A `Cookie` header without the console's session (its path is `/`, so a browser sends it to
    endpoints too: an operator opening a plugin's page would hand the plugin their session)."""
    pairs = [pair.strip() for pair in value.split(";")]
    kept = [pair for pair in pairs if pair and pair.partition("=")[0].strip().lower() != CONSOLE_COOKIE]
    return value if len(kept) == len(pairs) else "; ".join(kept)
