"""Gateways for the configuration-as-code tests: a fresh one per call, on SQLite or on Redis."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from endpoints.echo import plugin as echo
from endpoints.openai import plugin as openai
from endpoints.slack import plugin as slack
from endpoints.webhook import plugin as webhook
from gateway.cli.configcmd import config_service
from gateway.configfile.service import ConfigService
from gateway.host.registry import PluginRegistry
from gateway.host.runtime import Gateway, open_gateway
from gateway.records.apps import AppIn, AppUpdate
from tests.support.gateway import make_settings

__all__ = ["GatewayFactory", "gateway_factory", "populate", "service"]

GatewayFactory = Callable[..., contextlib.AbstractAsyncContextManager[Gateway]]
REDIS_DATABASES = (7, 8, 9)


def registry() -> PluginRegistry:
    return PluginRegistry([echo, webhook, slack, openai])


def service(gw: Gateway) -> ConfigService:
    return config_service(gw)


def gateway_factory(kind: str, tmp_path: Path, redis_url: str | None) -> GatewayFactory:
    """Each call opens a gateway on a store of its own (a new SQLite file, or a flushed Redis database)."""
    made = [0]

    @contextlib.asynccontextmanager
    async def fresh(**collaborators: Any) -> AsyncIterator[Gateway]:
        """`collaborators` (clock, http) go to `open_gateway`."""
        made[0] += 1
        if kind == "redis":
            assert redis_url is not None
            import redis.asyncio as aioredis

            url = redis_url.rsplit("/", 1)[0] + f"/{REDIS_DATABASES[made[0] - 1]}"
            client = aioredis.Redis.from_url(url)
            await client.flushdb()
            await client.aclose()
            settings = make_settings(tmp_path, store=url)
        else:
            settings = make_settings(tmp_path, store=f"sqlite:///{tmp_path / f'gateway{made[0]}.db'}")
        gateway = await open_gateway(settings, registry=registry(), **collaborators)
        try:
            yield gateway
        finally:
            await gateway.aclose()

    return fresh


async def populate(gw: Gateway) -> dict[str, Any]:
    """Two apps (one the other's fallback) and endpoints of several plugins; their generated secrets."""
    await gw.apps.add(
        AppIn(name="support", base_url="http://dify.test/v1", api_key=SecretStr("app-support-1"), mode="chat")
    )
    await gw.apps.add(
        AppIn(
            name="backup",
            base_url="http://dify.test/v1",
            api_key=SecretStr("app-backup-1"),
            mode="advanced-chat",
        )
    )
    await gw.apps.update("support", AppUpdate(fallback="backup"))
    hook, hook_url, hook_shown = await gw.endpoints.create_with_secrets(
        "webhook", ["support"], {"wait_seconds": 30.0}, name="hook"
    )
    echo_ep, echo_url = await gw.endpoints.create("echo", [], {"greeting": "hi", "token": "echo-token-1"}, name="echo")
    slack_ep, slack_url = await gw.endpoints.create(
        "slack", ["support"], {"signing_secret": "slack-signing-1", "bot_token": "xoxb-1"}, name="slack"
    )
    await gw.endpoints.set_enabled(slack_ep.id, False)
    return {
        "hook": hook.id,
        "echo": echo_ep.id,
        "slack": slack_ep.id,
        "urls": {hook.id: hook_url, echo_ep.id: echo_url, slack_ep.id: slack_url},
        "hook_secret": hook_shown["secret"],
    }
