"""The hop between replicas for a plugin being debugged: a request that lands on a replica without
the plugin's TCP connection is sent to the replica holding it, over HTTP, and its answer streams back.

Why HTTP rather than a Redis request-reply: the answer is an HTTP response that may stream for
minutes (a generator body); an HTTP hop relays it chunk by chunk with the transport's own flow
control, needs nothing of the store beyond the lease that says who holds the connection, and works
the same on any store. The holder's internal address is in that lease (`GATEWAY_INTERNAL_URL`).

The hop is authenticated with an HMAC-SHA256 over the time and the request's description (which
holds the SHA-256 of the hop's body, so the holder authenticates a hop before reading its body),
keyed with a key derived from the sealing key (`GATEWAY_SECRET_KEY`, which replicas share); a
signature older than `WINDOW` seconds is refused. The endpoint has been resolved, rate-limited and
its body read on the first replica; the holder serves it to the plugin with its own reverse calls.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from gateway.clock import Clock
from gateway.exceptions import PluginUnavailable, Unauthorized
from gateway.plugin import Headers, Request, Response
from gateway.security.crypto import derive_key

__all__ = [
    "FORWARD_PATH",
    "META_HEADER",
    "SIGNATURE_HEADER",
    "ForwardAuth",
    "Forwarder",
    "Hop",
    "decode_hop",
    "encode_hop",
]

FORWARD_PATH = "/internal/plugin-debug/forward"
PURPOSE = "dify-gateway plugin debug forward v1"
WINDOW = 60.0  # seconds a signed hop stays valid (replica clocks may differ a little)
META_HEADER = "x-gateway-forward"
SIGNATURE_HEADER = "x-gateway-forward-signature"
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "upgrade", "trailer", "te", "proxy-connection"}
)


class ForwardAuth:
    """Signs hops with the first sealing key's derived key; accepts any configured key's (rotation)."""

    def __init__(self, master_keys: Sequence[bytes], clock: Clock) -> None:
        self._keys = [derive_key(master, PURPOSE) for master in master_keys]
        self._clock = clock

    def _mac(self, key: bytes, timestamp: str, meta: str) -> str:
        return hmac.new(key, f"{timestamp}\n{meta}".encode(), hashlib.sha256).hexdigest()

    def sign(self, meta: str) -> str:
        timestamp = str(int(self._clock.time()))
        return f"t={timestamp},v1={self._mac(self._keys[0], timestamp, meta)}"

    def verify(self, signature: str, meta: str) -> None:
        """`Unauthorized` unless a configured key signed `meta` within `WINDOW` seconds."""
        parts = dict(part.partition("=")[::2] for part in signature.split(","))
        timestamp, mac = parts.get("t", ""), parts.get("v1", "")
        if not timestamp.isdigit() or abs(self._clock.time() - int(timestamp)) > WINDOW:
            raise Unauthorized("forwarding signature expired or malformed")
        valid = False
        for key in self._keys:
            valid |= hmac.compare_digest(self._mac(key, timestamp, meta), mac)
        if not valid:
            raise Unauthorized("forwarding signature invalid")


@dataclass(frozen=True, slots=True)
class Hop:
    """What the signed meta header says: the request but its headers and body, which travel as the
    hop's body (a JSON line of the headers, then the body), and that body's length and digest."""

    plugin: str
    endpoint_id: str
    length: int
    digest: str
    document: dict[str, Any]

    def request(self, body: bytes) -> Request:
        """The request, from the hop's body (`Unauthorized` when it is not the body that was signed)."""
        if len(body) != self.length or not hmac.compare_digest(hashlib.sha256(body).hexdigest(), self.digest):
            raise Unauthorized("the forwarded body is not the one signed")
        head, _, payload = body.partition(b"\n")
        try:
            headers = Headers([(str(k), str(v)) for k, v in json.loads(head)])
            doc = self.document
            return Request(
                method=str(doc["method"]),
                path=str(doc["path"]),
                query_string=str(doc["query_string"]),
                headers=headers,
                body=payload,
                endpoint_id=self.endpoint_id,
                endpoint_url=str(doc["endpoint_url"]),
                received_at=float(doc["received_at"]),
                client_ip=doc.get("client_ip"),
                request_id=str(doc.get("request_id") or ""),
            )
        except (ValueError, KeyError, TypeError):
            raise Unauthorized("malformed forwarded request") from None


def encode_hop(plugin: str, request: Request) -> tuple[str, bytes]:
    """The meta header and the body of a hop carrying `request`."""
    body = json.dumps([[k, v] for k, v in request.headers.raw], separators=(",", ":")).encode() + b"\n" + request.body
    document = {
        "plugin": plugin,
        "endpoint_id": request.endpoint_id,
        "length": len(body),
        "digest": hashlib.sha256(body).hexdigest(),
        "method": request.method,
        "path": request.path,
        "query_string": request.query_string,
        "endpoint_url": request.endpoint_url,
        "received_at": request.received_at,
        "client_ip": request.client_ip,
        "request_id": request.request_id,
    }
    return base64.urlsafe_b64encode(json.dumps(document, separators=(",", ":")).encode()).decode(), body


def decode_hop(meta: str) -> Hop:
    """The hop a (verified) meta header describes."""
    try:
        document: dict[str, Any] = json.loads(base64.urlsafe_b64decode(meta.encode()))
        return Hop(
            plugin=str(document["plugin"]),
            endpoint_id=str(document["endpoint_id"]),
            length=int(document["length"]),
            digest=str(document["digest"]),
            document=document,
        )
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise Unauthorized("malformed forwarding header") from None


class Forwarder:
    """Sends a request to the replica holding a plugin's connection; its answer, streamed."""

    def __init__(self, http: httpx.AsyncClient, auth: ForwardAuth, *, timeout: float) -> None:
        self._http = http
        self._auth = auth
        self._timeout = timeout

    async def __call__(self, holder_url: str, plugin: str, request: Request) -> Response:
        meta, body = encode_hop(plugin, request)
        outbound = self._http.build_request(
            "POST",
            holder_url.rstrip("/") + FORWARD_PATH,
            content=body,
            headers={META_HEADER: meta, SIGNATURE_HEADER: self._auth.sign(meta)},
            timeout=httpx.Timeout(self._timeout, connect=5.0),
        )
        try:
            answer = await self._http.send(outbound, stream=True)
        except httpx.HTTPError as exc:
            raise PluginUnavailable(
                f"plugin {plugin} is connected to another replica, which could not be reached ({type(exc).__name__})",
                retry_after=2.0,
            ) from None
        headers = [(k, v) for k, v in answer.headers.multi_items() if k.lower() not in _HOP_BY_HOP]
        return Response(answer.status_code, _relay(answer), headers)


async def _relay(answer: httpx.Response) -> AsyncIterator[bytes]:
    try:
        async for chunk in answer.aiter_raw():
            yield chunk
    finally:
        await answer.aclose()
