"""Plugin requests without a server: build the `Request` a handler receives, and route it
through a plugin the way the gateway's ingress does (match, verify, handle)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace

from starlette.responses import Response as StarletteResponse

from gateway.http.errors import error_payload, error_response
from gateway.plugin import Context, GatewayError, Headers, NotFound, Plugin, Request, Response, Unauthorized

__all__ = ["ENDPOINT_ID", "ENDPOINT_URL", "dispatch", "make_request"]

ENDPOINT_ID = "ep_test"
ENDPOINT_URL = "http://gateway.test/e/ep_test"


def make_request(
    method: str = "GET",
    path: str = "/",
    *,
    body: bytes = b"",
    headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
    query_string: str = "",
    endpoint_id: str = ENDPOINT_ID,
    endpoint_url: str = ENDPOINT_URL,
    received_at: float = 0.0,
    client_ip: str | None = "127.0.0.1",
    request_id: str = "req_test",
) -> Request:
    """A `Request` as the ingress builds it: `path` below the endpoint URL, raw body and query."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    return Request(
        method=method.upper(),
        path=path,
        query_string=query_string,
        headers=Headers(pairs),
        body=body,
        endpoint_id=endpoint_id,
        endpoint_url=endpoint_url,
        received_at=received_at,
        client_ip=client_ip,
        request_id=request_id,
    )


async def dispatch(plugin: Plugin, ctx: Context, request: Request) -> Response:
    """Route `request` through `plugin` and answer what the gateway would answer: find the route,
    run the verifier unless the route opted out, then the handler.

    A rejected request gets the verdict's response (else the gateway's 401); no route, 404 (405
    with `allow` when the path takes other methods); a `GatewayError` from the verifier or the
    handler, its error answer (`gateway.http.errors`). Any other exception propagates: the gateway
    would hide it behind an opaque 500, a test wants its traceback.
    """
    try:
        return await _dispatch(plugin, ctx, request)
    except GatewayError as exc:
        return _from_starlette(error_response(exc))


async def _dispatch(plugin: Plugin, ctx: Context, request: Request) -> Response:
    route, params, allowed = plugin.match(request.method, request.path)
    if route is None:
        if allowed:
            payload = error_payload("method_not_allowed", "this route does not accept that method")
            return Response.json(payload, 405, headers=[("allow", ", ".join(sorted(allowed)))])
        raise NotFound(f"this endpoint has no route {request.path}")
    request = replace(request, path_params=params)
    if route.verify:
        verdict = await plugin.verifier(request, ctx)
        if not verdict.passed:
            if verdict.response is not None:
                return verdict.response
            raise Unauthorized("request verification failed")
        if verdict.verified is not None:
            request = replace(request, verified=verdict.verified)
    return await route.handler(request, ctx)


def _from_starlette(response: StarletteResponse) -> Response:
    headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in response.raw_headers]
    kept = [(name, value) for name, value in headers if name not in ("content-length", "content-type")]
    return Response(response.status_code, bytes(response.body), kept, response.media_type)
