"""Building a gateway for tests: settings, an in-process client, a real uvicorn server."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from asgi_lifespan import LifespanManager
from pydantic import SecretStr
from starlette.types import ASGIApp

from gateway.host.runtime import Gateway
from gateway.http.app import create_app
from gateway.settings import Settings
from gateway.storage.base import Job
from tests.support.difyplugins import shared_venv_dir

ADMIN_TOKEN = "admin-" + "t" * 40
SECRET_KEY = "secret-" + "k" * 48


def make_settings(tmp_path: Path, **changes: Any) -> Settings:
    base = Settings(
        store=f"sqlite:///{tmp_path / 'gateway.db'}",
        admin_token=SecretStr(ADMIN_TOKEN),
        secret_key=(SecretStr(SECRET_KEY),),
        public_url="http://gw.test",
        job_poll_interval=0.05,
        use_aiohttp=False,  # respx intercepts httpx's own transport only
        plugin_venv_dir=str(shared_venv_dir()),  # Dify plugin venvs: built once for every test
    )
    return base.with_changes(**changes)


def admin_headers() -> dict[str, str]:
    return {"authorization": f"Bearer {ADMIN_TOKEN}"}


@dataclass
class Running:
    client: httpx.AsyncClient
    gateway: Gateway
    app: ASGIApp

    def path(self, url: str) -> str:
        """The path of a public endpoint URL (public_url is http://gw.test in tests)."""
        return url.removeprefix(self.gateway.settings.public_url)


async def run_job_now(gateway: Gateway, job_id: str) -> Job:
    """Claim `job_id` (even if due later) and run it once with the gateway's workers; the job after."""
    claimed = await gateway.store.job_claim(gateway.workers.owner, gateway.clock.time() + 10**6, 30, job_id=job_id)
    assert claimed is not None
    await gateway.workers.run_job(claimed)
    job = await gateway.store.job_get(job_id)
    assert job is not None
    return job


@contextlib.asynccontextmanager
async def running_app(settings: Settings, **kwargs: Any) -> AsyncIterator[Running]:
    """The app with its lifespan running and an httpx client talking to it in-process."""
    app = create_app(settings, **kwargs)
    async with LifespanManager(app) as manager:
        gateway: Gateway = manager._state["gateway"]
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw.test") as client:
            yield Running(client, gateway, manager.app)


async def post_then_hang_up(
    app: ASGIApp, path: str, first_chunk: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> list[dict[str, Any]]:
    """POST part of a body straight into `app`, then disconnect; the ASGI messages it sent back."""
    messages: list[dict[str, Any]] = [{"type": "http.request", "body": first_chunk, "more_body": True}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"gw.test"), *(headers or [])],
        "client": ("127.0.0.1", 50000),
        "server": ("gw.test", 80),
    }
    await app(scope, receive, send)  # type: ignore[arg-type]
    return sent


def listening_socket() -> socket.socket:
    """A loopback TCP socket on a port the kernel picked (port 0), already listening.

    Give it to a server (`live_server(app, sock=...)`, `start_gateway(env, sock)`): its port is known
    before the server starts and nobody else can take it in between.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def base_url(sock: socket.socket) -> str:
    """`http://127.0.0.1:PORT` of a bound socket."""
    host, port = sock.getsockname()[:2]
    return f"http://{host}:{port}"


@contextlib.contextmanager
def refused_port() -> Iterator[int]:
    """A loopback port where connections are refused for the block: bound (so no one else can
    listen there) but not listening."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        yield port


@contextlib.asynccontextmanager
async def live_server(app: ASGIApp, sock: socket.socket | None = None, *, lifespan: str = "on") -> AsyncIterator[str]:
    """Serve `app` on a real uvicorn on loopback; yields the base URL (`lifespan="off"` for an app
    whose lifespan the test runs itself, to reach its state).

    The server listens on `sock` (see `listening_socket`) or on a port of its own it bound to 0.
    The caller's socket stays open afterwards: another server can take over the same port.
    """
    own = sock is None
    sock = sock or listening_socket()
    config = uvicorn.Config(app, log_level="warning", lifespan=lifespan)  # type: ignore[arg-type]
    server = uvicorn.Server(config)
    # uvicorn closes the sockets it served on: give it a duplicate of the caller's.
    task = asyncio.create_task(server.serve(sockets=[sock.dup()]))
    try:
        for _ in range(500):
            if server.started:
                break
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        yield base_url(sock)
    finally:
        server.should_exit = True
        await task
        if own:
            sock.close()


@contextlib.asynccontextmanager
async def live_app(build: Callable[[str], ASGIApp]) -> AsyncIterator[str]:
    """Serve the app `build(base_url)` makes, for apps that must know their own URL (a gateway's
    `public_url`); yields the base URL."""
    with listening_socket() as sock:
        async with live_server(build(base_url(sock)), sock=sock) as base:
            yield base


async def create_chat_endpoint(
    client: httpx.AsyncClient, base: str, simulator: str, plugin: str, settings: dict[str, Any]
) -> str:
    """On the gateway at `base`: the simulator's chat app `support` and a `plugin` endpoint bound to
    it with `settings`; the endpoint's URL."""
    app = {"name": "support", "base_url": f"{simulator}/v1", "api_key": "app-simulator", "mode": "chat"}
    assert (await client.post(f"{base}/admin/api/apps", json=app, headers=admin_headers())).status_code == 201
    body = {"plugin": plugin, "apps": ["support"], "settings": settings}
    created = await client.post(f"{base}/admin/api/endpoints", json=body, headers=admin_headers())
    assert created.status_code == 201, created.text
    url: str = created.json()["url"]
    return url
