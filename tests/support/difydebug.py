"""Remote debugging in tests: a gateway under uvicorn listening for debugging connections (port 0 for
HTTP and for the debug port), and a developer's plugin process run with the real `dify_plugin` SDK
in remote mode (`INSTALL_METHOD=remote`, `REMOTE_INSTALL_URL`, `REMOTE_INSTALL_KEY`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from asgi_lifespan import LifespanManager

from gateway.difyplugins.runtime.venv import PluginVenvs, requirements_of
from gateway.host.runtime import Gateway
from gateway.http.app import create_app
from tests.support.difyplugins import shared_venv_dir
from tests.support.gateway import base_url, listening_socket, live_server, make_settings

__all__ = ["DebugLive", "DeveloperPlugin", "debug_gateway", "declare", "eventually"]


@dataclass
class DebugLive:
    gateway: Gateway
    url: str
    client: httpx.AsyncClient

    @property
    def debug_address(self) -> str:
        address = self.gateway.plugin_debug.listener.address
        assert address is not None
        return f"{address[0]}:{address[1]}"

    def at(self, endpoint_url: str) -> str:
        return self.url + endpoint_url.removeprefix(self.gateway.settings.public_url)


@contextlib.asynccontextmanager
async def debug_gateway(tmp_path: Path, python: str, **changes: Any) -> AsyncIterator[DebugLive]:
    """A gateway serving HTTP on a port of its own and listening for debugging plugins on another."""
    sock = listening_socket()
    url = base_url(sock)
    settings = make_settings(
        tmp_path, plugin_python=python, plugin_debug_addr="127.0.0.1:0", internal_url=url, **changes
    )
    app = create_app(settings, run_workers=False)
    try:
        async with (
            LifespanManager(app) as manager,
            live_server(manager.app, sock, lifespan="off"),
            httpx.AsyncClient(timeout=60) as client,
        ):
            yield DebugLive(manager._state["gateway"], url, client)
    finally:
        sock.close()


class DeveloperPlugin:
    """A plugin directory run the way its developer runs it against a remote host."""

    def __init__(self, directory: Path, python: Path) -> None:
        self.directory = directory
        self.python = python
        self.process: asyncio.subprocess.Process | None = None

    @classmethod
    async def build(cls, directory: Path, python: str, version: str) -> DeveloperPlugin:
        venv_python = await PluginVenvs(shared_venv_dir()).ensure(requirements_of(directory), python, version)
        return cls(directory, venv_python)

    async def start(self, address: str, key: str) -> None:
        self.process = await asyncio.create_subprocess_exec(
            str(self.python),
            "-m",
            "main",
            cwd=self.directory,
            env={
                "PATH": f"{self.python.parent}:/usr/bin:/bin",
                "HOME": str(self.directory),
                "PYTHONUNBUFFERED": "1",
                "INSTALL_METHOD": "remote",
                "REMOTE_INSTALL_URL": address,
                "REMOTE_INSTALL_KEY": key,
                "HEARTBEAT_INTERVAL": "2",
            },
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )

    async def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.returncode is not None:
            return
        process.kill()  # the developer's Ctrl-C (the SDK's SIGINT handler exits at once too)
        await process.wait()


async def eventually(check: Callable[[], Awaitable[bool]], what: str, *, tries: int = 400) -> None:
    """Wait until `check()` is true (polled every 50 ms), failing with `what` if it never is."""
    for _ in range(tries):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never: {what}")


async def declare(address: str, key: str, *, author: str = "tests", name: str = "echo") -> bytes:
    """Connect like a plugin (handshake, a minimal manifest and endpoint group, `end`) with a raw
    socket; what the gateway said before it closed the connection, or b"" while it keeps it."""
    host, port = address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    manifest = {
        "version": "0.0.1",
        "type": "plugin",
        "author": author,
        "name": name,
        "resource": {"permission": {"endpoint": {"enabled": True}, "app": None}},
        "plugins": {"endpoints": ["group/main.yaml"]},
        "meta": {"version": "0.0.1", "arch": ["amd64"], "runner": {"language": "python", "version": "3.12"}},
    }
    declared = {"path": "/p", "method": "GET", "extra": {"python": {"source": "p.py"}}}
    try:
        for message in (
            {"type": "handshake", "data": {"key": key}},
            {"type": "manifest_declaration", "data": manifest},
            {"type": "endpoint_declaration", "data": [{"settings": [], "endpoints": [declared]}]},
            {"type": "end", "data": {}},
        ):
            writer.write(json.dumps(message).encode() + b"\n\n")
        await writer.drain()
        return await reader.read()
    finally:
        writer.close()
