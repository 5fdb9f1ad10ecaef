"""The internal route a replica forwards a debugged plugin's request to (the replica holding the
plugin's TCP connection): `POST /internal/plugin-debug/forward`, authenticated by the hop's
signature (gateway/difyplugins/debug/forward.py) before its body is read, each signed hop served
once; a replica without `GATEWAY_INTERNAL_URL` (which no replica forwards to) has no such route.

The first replica resolved the endpoint, applied its rate limit and read the body within its cap;
here the endpoint is read again (enabled, bound to that plugin), the body is capped the same way,
and the request is served to the plugin over this replica's connection, its reverse calls served
here. The answer (status, headers, streamed body) goes back as it is produced. Nothing is logged
in this replica's request log: the first replica logs the request.
"""

from __future__ import annotations

import hashlib
import logging

from starlette.requests import Request as StarletteRequest
from starlette.responses import Response as StarletteResponse

from gateway.difyplugins.debug.forward import FORWARD_PATH, META_HEADER, SIGNATURE_HEADER, WINDOW, decode_hop
from gateway.difyplugins.runtime.endpoint import DifyEndpointPlugin
from gateway.exceptions import NotFound, PayloadTooLarge, Unauthorized
from gateway.host.runtime import Gateway
from gateway.http.errors import handle_error
from gateway.http.ingress import Departures, to_starlette
from gateway.http.middleware import BODY_LIMITS, BodyLimits

__all__ = ["forwarded_plugin_request"]

logger = logging.getLogger(__name__)

HEADERS_ALLOWANCE = 1024 * 1024  # the request's headers travel in the hop's body, before the body


async def forwarded_plugin_request(request: StarletteRequest) -> StarletteResponse:
    gateway: Gateway = request.state.gateway
    try:
        return await _serve(gateway, request)
    except Exception as exc:
        return handle_error(exc, "a forwarded debugging request")


async def _serve(gateway: Gateway, request: StarletteRequest) -> StarletteResponse:
    if not gateway.settings.internal_url:
        # No replica forwards to a replica without an internal address: nothing is served here.
        raise NotFound(f"no route {FORWARD_PATH}")
    meta = request.headers.get(META_HEADER, "")
    signature = request.headers.get(SIGNATURE_HEADER, "")
    if not meta or not signature:
        raise Unauthorized("not a forwarded request")
    gateway.plugin_debug.auth.verify(signature, meta)
    # A hop is served once: a copy replayed within its window (its signature seen) is refused.
    seen = "plugin-debug-hop:" + hashlib.sha256(signature.encode()).hexdigest()
    if not await gateway.store.kv_set_if_absent(seen, "1", ttl=2 * WINDOW + 1):
        raise Unauthorized("this forwarded request was served already")
    hop = decode_hop(meta)
    record = await gateway.endpoints.get(hop.endpoint_id)
    if not record.enabled or record.plugin != hop.plugin:
        raise NotFound("no such endpoint")
    plugin = gateway.registry.get(record.plugin) or await gateway.dify_runtime.find(record.plugin)
    if not isinstance(plugin, DifyEndpointPlugin):
        raise NotFound("no such endpoint")
    cap = (record.options.max_body_bytes or gateway.settings.max_body_bytes) + HEADERS_ALLOWANCE
    if hop.length > cap:
        raise PayloadTooLarge("the forwarded body is larger than the endpoint's cap")
    limits: BodyLimits | None = request.scope.get(BODY_LIMITS)
    if limits is not None:
        limits.max_bytes = hop.length
    inbound = hop.request(await request.body())
    ctx = await gateway.contexts.for_request(record, plugin)
    # Streamed as the ingress streams (a client that leaves cancels the body): one watcher for this answer.
    return to_starlette(await plugin.serve(inbound, ctx), Departures())
