"""The internal route a replica forwards a debugged plugin's request to (the replica holding the
plugin's TCP connection): `POST /internal/plugin-debug/forward`, authenticated by the hop's
signature (gateway/difyplugins/debug/forward.py) before its body is read.

The first replica resolved the endpoint, applied its rate limit and read the body within its cap;
here the endpoint is read again (enabled, bound to that plugin), the body is capped the same way,
and the request is served to the plugin over this replica's connection, its reverse calls served
here. The answer (status, headers, streamed body) goes back as it is produced. Nothing is logged
in this replica's request log: the first replica logs the request.
"""

from __future__ import annotations

import logging

from starlette.requests import Request as StarletteRequest
from starlette.responses import Response as StarletteResponse

from gateway.difyplugins.debug.forward import META_HEADER, SIGNATURE_HEADER, decode_hop
from gateway.difyplugins.runtime.endpoint import DifyEndpointPlugin
from gateway.exceptions import NotFound, PayloadTooLarge, Unauthorized
from gateway.host.runtime import Gateway
from gateway.http.errors import handle_error
from gateway.http.ingress import to_starlette
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
    meta = request.headers.get(META_HEADER, "")
    signature = request.headers.get(SIGNATURE_HEADER, "")
    if not meta or not signature:
        raise Unauthorized("not a forwarded request")
    gateway.plugin_debug.auth.verify(signature, meta)
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
    return to_starlette(await plugin.serve(inbound, ctx))
