"""A live stack for the openai plugin's tests: Dify simulators and the gateway on real uvicorn
servers, apps and an `openai` endpoint created through the admin API."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.clock import Clock
from gateway.http.app import create_app
from gateway.simulator.app import create_simulator_app
from gateway.simulator.config import SimulatorConfig
from tests.support.gateway import admin_headers, live_app, live_server, make_settings

FAST = SimulatorConfig(first_token_latency=0, tokens_per_second=0)


@dataclass
class Stack:
    http: httpx.AsyncClient
    gateway: str
    endpoint: dict[str, Any]
    key: str
    simulators: dict[str, str] = field(default_factory=dict)  # app name -> simulator base URL

    @property
    def base_url(self) -> str:
        return f"{self.endpoint['url']}/v1"

    @property
    def endpoint_id(self) -> str:
        return str(self.endpoint["id"])

    def client(self, key: str | None = None, **options: Any) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=self.base_url, api_key=key or self.key, **{"max_retries": 0, **options})

    def sync_client(self, key: str | None = None) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.base_url, api_key=key or self.key, max_retries=0)

    async def stats(self, app: str = "support") -> dict[str, Any]:
        stats: dict[str, Any] = (await self.http.get(f"{self.simulators[app]}/_sim/stats")).json()
        return stats

    async def generation_bodies(self, app: str = "support") -> list[dict[str, Any]]:
        stats = await self.stats(app)
        return [r["body"] for r in stats["recent_requests"] if r["path"].endswith(("-messages", "/run"))]

    async def action(self, name: str, **args: str) -> Any:
        response = await self.http.post(
            f"{self.gateway}/admin/api/endpoints/{self.endpoint_id}/actions/{name}",
            json={"args": args},
            headers=admin_headers(),
        )
        assert response.status_code == 200, response.text
        return response.json()["result"]


def with_outputs(outputs: Mapping[str, Any]) -> Callable[[ASGIApp], ASGIApp]:
    """Wrap a simulator so its `workflow_finished` events carry `outputs` besides its own ("text")."""

    def wrap(app: ASGIApp) -> ASGIApp:
        async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
            pending = b""

            async def rewrite(message: Message) -> None:
                nonlocal pending
                if message["type"] != "http.response.body":
                    await send(message)
                    return
                pending += message.get("body", b"")
                *blocks, pending = pending.split(b"\n\n")
                out = []
                for block in blocks:
                    if block.startswith(b"data: ") and b'"workflow_finished"' in block:
                        event = json.loads(block[6:])
                        event["data"]["outputs"] = {**(event["data"]["outputs"] or {}), **outputs}
                        block = b"data: " + json.dumps(event, ensure_ascii=False).encode()
                    out.append(block + b"\n\n")
                more = message.get("more_body", False)
                await send({**message, "body": b"".join(out) + (b"" if more else pending), "more_body": more})

            await app(scope, receive, rewrite)

        return wrapped

    return wrap


@contextlib.asynccontextmanager
async def openai_stack(
    tmp_path: Path,
    apps: Mapping[str, SimulatorConfig] | None = None,
    settings: Mapping[str, Any] | None = None,
    wrappers: Mapping[str, Callable[[ASGIApp], ASGIApp]] | None = None,
    simulator_clock: Clock | None = None,
    gateway_wrapper: Callable[[ASGIApp], ASGIApp] | None = None,
    **gateway_changes: Any,
) -> AsyncIterator[Stack]:
    """Simulators for `apps` (name -> config; default one fast chat app "support") and an endpoint.

    `wrappers` (app name -> ASGI wrapper) alter what a simulator sends, e.g. `with_outputs`;
    `simulator_clock` paces the simulators' tokens; `gateway_wrapper` wraps the gateway's ASGI app
    (e.g. to see its writes).
    """
    apps = apps or {"support": FAST}
    wrappers = wrappers or {}
    async with contextlib.AsyncExitStack() as stack:
        simulators = {
            name: await stack.enter_async_context(
                live_server(wrappers.get(name, _same)(create_simulator_app(config, clock=simulator_clock)))
            )
            for name, config in apps.items()
        }
        gateway = await stack.enter_async_context(
            live_app(
                lambda url: (gateway_wrapper or _same)(
                    create_app(make_settings(tmp_path, public_url=url, **gateway_changes))
                )
            )
        )
        http = await stack.enter_async_context(httpx.AsyncClient(timeout=30))
        for name, config in apps.items():
            app = {"name": name, "base_url": f"{simulators[name]}/v1", "api_key": "app-simulator", "mode": config.mode}
            added = await http.post(f"{gateway}/admin/api/apps", json=app, headers=admin_headers())
            assert added.status_code == 201, added.text
        created = await http.post(
            f"{gateway}/admin/api/endpoints",
            json={"plugin": "openai", "apps": list(apps), "settings": dict(settings or {})},
            headers=admin_headers(),
        )
        assert created.status_code == 201, created.text
        endpoint = created.json()
        yield Stack(http, gateway, endpoint, endpoint["secrets"]["api_key"], simulators)


def _same(app: ASGIApp) -> ASGIApp:
    return app
