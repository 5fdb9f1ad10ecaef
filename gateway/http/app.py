"""The app factory: `create_app(settings)` builds one gateway; no module-level app, no global state.

Serve it with `dify-gateway serve` or `uvicorn gateway.http.app:create_app --factory`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
from collections.abc import AsyncIterator, Callable
from typing import Any, TypedDict

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp

from gateway.admin.api import admin_routes
from gateway.admin.auth import AdminAuthMiddleware
from gateway.clock import Clock, SystemClock
from gateway.console.routes import console_mount
from gateway.difyplugins.debug.forward import FORWARD_PATH
from gateway.exceptions import StoreError
from gateway.host.registry import PluginRegistry
from gateway.host.runtime import Gateway, open_gateway
from gateway.host.services import start_services, stop_services
from gateway.http.debugforward import forwarded_plugin_request
from gateway.http.errors import error_response, exception_handlers
from gateway.http.ingress import Ingress
from gateway.http.middleware import EdgeMiddleware
from gateway.plugin import ALL_METHODS
from gateway.settings import Settings, bootstrap
from gateway.storage.base import Store

__all__ = ["GatewayApp", "State", "create_app"]

logger = logging.getLogger(__name__)


class State(TypedDict):
    """Lifespan state, read by handlers as `request.state.<name>`."""

    gateway: Gateway
    ingress: Ingress


def create_app(
    settings: Settings | None = None,
    *,
    registry: PluginRegistry | None = None,
    clock: Clock | None = None,
    store: Store | None = None,
    http: httpx.AsyncClient | None = None,
    run_workers: bool = True,
) -> Starlette:
    """Build the gateway's ASGI app.

    Args:
        settings: the settings; read from the environment (`GATEWAY_*`) when omitted.
        registry, clock, store, http: collaborators to use instead of building them (tests).
        run_workers: run job workers in this process (off for tests that drive jobs by hand).
    """
    if settings is None:
        boot = bootstrap(Settings.from_env(os.environ))
        if boot.generated_admin_token:
            print(f"Generated an admin token (shown once): {boot.generated_admin_token}", flush=True)
        settings = boot.settings
    else:
        settings.validate()
    clock = clock or SystemClock()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[State]:
        gateway = await open_gateway(settings, registry=registry, clock=clock, store=store, http=http)
        ingress = Ingress(gateway)
        workers: asyncio.Task[None] | None = None
        if run_workers:
            workers = asyncio.create_task(gateway.workers.run(), name="job-workers")
        # Services from other packages (e.g. Discord bots, see gateway/host/services.py), with the workers.
        services = start_services(gateway.host) if run_workers else []
        debug_address = settings.plugin_debug_address
        if debug_address is not None:  # remote debugging of Dify plugins (off unless configured)
            await gateway.plugin_debug.listen(*debug_address)
        try:
            yield {"gateway": gateway, "ingress": ingress}
        finally:
            await gateway.plugin_debug.aclose()
            await stop_services(services)
            if workers is not None:
                workers.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await workers
            await gateway.aclose()

    assert settings.admin_token is not None  # validated above
    routes = [
        Route("/healthz", healthz, methods=["GET", "HEAD"]),
        Route("/readyz", readyz, methods=["GET", "HEAD"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/e/{token}", endpoint, methods=list(ALL_METHODS)),
        Route("/e/{token}/{path:path}", endpoint, methods=list(ALL_METHODS)),
        Route(FORWARD_PATH, forwarded_plugin_request, methods=["POST"]),  # replica to replica, signed
        # The token guards all of /admin, so an unknown path is a 401 like any other, never a 404.
        Mount(
            "/admin",
            routes=[Mount("/api", routes=admin_routes())],
            middleware=[Middleware(AdminAuthMiddleware, token=settings.admin_token.get_secret_value())],
        ),
    ]
    if settings.console:  # the web console (gateway/console/); `/` leads to it
        routes += [console_mount(settings.admin_token.get_secret_value()), Route("/", to_console, methods=["GET"])]
    # One pure-ASGI layer outside Starlette's: access log, body limits, endpoint requests to the ingress.
    edge = functools.partial(
        EdgeMiddleware, endpoint=endpoint, clock=clock, max_bytes=settings.max_body_bytes, timeout=settings.body_timeout
    )
    return GatewayApp(edge, routes=routes, lifespan=lifespan, exception_handlers=exception_handlers)


class GatewayApp(Starlette):
    """Starlette with the gateway's edge layer (`EdgeMiddleware`) around its whole middleware stack.

    Starlette puts its error layer (`ServerErrorMiddleware`, with a send wrapper of its own)
    outside every user middleware; endpoint requests, the hot path, have no use for it (the
    ingress answers every error itself), so the edge goes first and hands them to the ingress
    before it. Every other request goes through Starlette's stack as before.
    """

    def __init__(self, edge: Callable[[ASGIApp], ASGIApp], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._edge = edge

    def build_middleware_stack(self) -> ASGIApp:
        return self._edge(super().build_middleware_stack())


async def endpoint(request: Request) -> Response:
    # The lifespan state straight from the scope: `request.state` builds a wrapper per request.
    ingress: Ingress = request.scope["state"]["ingress"]
    return await ingress(request)


async def to_console(request: Request) -> Response:
    return RedirectResponse("/console/", status_code=302)


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    gateway: Gateway = request.state.gateway
    try:
        await asyncio.wait_for(gateway.store.ping(), timeout=2.0)
    except Exception:
        return error_response(StoreError("the store is not reachable"))
    return JSONResponse({"status": "ready"})


async def metrics(request: Request) -> Response:
    gateway: Gateway = request.state.gateway
    return PlainTextResponse(gateway.metrics.render(), media_type="text/plain; version=0.0.4")
