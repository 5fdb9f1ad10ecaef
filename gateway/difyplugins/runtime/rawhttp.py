"""The inbound request as the raw HTTP/1.1 bytes a Dify plugin parses (`raw_http_request`).

What the plugin gets, unlike inside Dify: the query string exactly as the caller sent it (Dify
re-encodes and sorts it), the whole body (Dify cuts it at 10 MiB; ours is bounded by the
endpoint's body limit), and the caller's address in `X-Forwarded-For` and `X-Real-IP` (Dify strips
both). Those two headers, when the caller sent them, are replaced by the address the gateway saw
(after its trusted proxies), so a caller can't forge them. Header names containing `_` are dropped
(the SDK's parsers refuse them or fold them onto the `-` name), and so are the hop-by-hop headers;
`Content-Length` is set to the body's length (the body arrives whole, never chunked).
"""

from __future__ import annotations

from urllib.parse import quote

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


def raw_request(request: Request) -> bytes:
    """`request` as HTTP/1.1 bytes: request line (path percent-encoded, raw query), headers, body."""
    target = quote(request.path, safe=_PATH_SAFE)
    if request.query_string:
        target += "?" + request.query_string
    lines = [f"{request.method} {target} HTTP/1.1"]
    for name, value in request.headers.raw:
        if name in DROPPED_HEADERS or "_" in name or not name:
            continue
        lines.append(f"{name}: {value}")
    if request.client_ip:
        lines.append(f"x-forwarded-for: {request.client_ip}")
        lines.append(f"x-real-ip: {request.client_ip}")
    lines.append(f"content-length: {len(request.body)}")
    head = "\r\n".join(lines) + "\r\n\r\n"
    return head.encode("latin-1", errors="replace") + request.body
