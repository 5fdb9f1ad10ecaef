"""The gateway's own server process: uvicorn as `dify-gateway serve` runs it, with a settled heap.

`server_config(app, settings)` is the uvicorn configuration of the gateway's process (proxy headers
only from trusted proxies, the gateway's access log instead of uvicorn's). `GatewayServer` is
uvicorn's `Server` that settles the heap once the app has started (`settle_heap`).

Why settle the heap: after startup the process holds some hundred thousand long-lived objects
(modules, plugins, settings, the store) that the cyclic collector would scan again on every full
collection (~25 ms each on the development box, a pause of every open request). Under load, the
objects of the requests in flight (a few dozen each) keep crossing the youngest generation's
default threshold of 700, promoting them to older generations and triggering those collections
every fraction of a second. Frozen, the startup heap is never scanned again; a higher youngest
threshold scans the requests in flight less often. Neither changes what is collected, only when:
garbage in reference cycles is still freed, by the next collection. Only the process's owner
does this (a test that builds many apps in one process must not freeze each one's heap).
"""

from __future__ import annotations

import gc
import socket

import uvicorn
from starlette.types import ASGIApp

from gateway.settings import Settings

__all__ = ["GC_THRESHOLDS", "GatewayServer", "server_config", "settle_heap"]

GC_THRESHOLDS = (7000, 10, 10)  # the youngest generation's threshold is ten times Python's default


def server_config(app: ASGIApp, settings: Settings, **overrides: object) -> uvicorn.Config:
    """The uvicorn config of the gateway's process; `overrides` are uvicorn.Config's own options."""
    options: dict[str, object] = {
        "host": settings.host,
        "port": settings.port,
        # X-Forwarded-For is believed from the configured proxies only, and by default from none.
        "proxy_headers": bool(settings.trusted_proxies),
        "forwarded_allow_ips": list(settings.trusted_proxies) or None,
        "log_level": settings.log_level,
        "log_config": None,  # uvicorn's records go through configure_logging's handler too
        "access_log": False,  # gateway.access logs instead, without URL tokens
        "timeout_graceful_shutdown": 10,
        **overrides,
    }
    return uvicorn.Config(app, **options)  # type: ignore[arg-type]


def settle_heap() -> None:
    """Collect, then freeze what is left (the startup heap) and raise the collector's thresholds."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


class GatewayServer(uvicorn.Server):
    """uvicorn's server, settling the heap (`settle_heap`) once the app's startup has run."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            settle_heap()
