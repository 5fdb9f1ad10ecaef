"""Snapshots: save, list, diff, restore (keys, secrets and URLs come back), sealed at rest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gateway.exceptions import Conflict, NotFound
from gateway.records.apps import AppUpdate
from tests.support.configfile import GatewayFactory, gateway_factory, populate, service

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["sqlite", "redis"])
def fresh(request: pytest.FixtureRequest, tmp_path: Path) -> GatewayFactory:
    redis_url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    return gateway_factory(request.param, tmp_path, redis_url)


async def test_restore_brings_back_keys_secrets_urls_and_removes_what_came_after(fresh: GatewayFactory) -> None:
    async with fresh() as gw:
        made = await populate(gw)
        config = service(gw)
        saved = await config.save_snapshot("before")
        assert saved["apps"] == 2 and saved["endpoints"] == 3
        stored = json.dumps(await gw.store.doc_list("snapshots"))
        for secret in ("app-support-1", "xoxb-1", "slack-signing-1", made["hook_secret"]):
            assert secret not in stored
        for url in made["urls"].values():
            assert url.rsplit("/", 1)[1] not in stored

        # Afterwards: a key changed, a setting changed, an endpoint deleted, another created.
        await gw.apps.update("support", AppUpdate(api_key=_secret("app-support-2"), mode="chat"))
        await gw.endpoints.update(made["echo"], settings={"greeting": "changed", "token": "echo-token-2"})
        await gw.endpoints.delete(made["hook"])
        extra, _ = await gw.endpoints.create("echo", [], {})
        await config.save_snapshot("after")

        changes = [c.describe() for c in await config.diff_snapshots("after", "before")]
        assert sorted(changes) == sorted(
            [
                "~ update app support (api_key)",
                f"~ update endpoint {made['echo']} (settings.greeting, settings.token)",
                f"+ create endpoint {made['hook']}",
                f"- delete endpoint {extra.id}",
            ]
        )
        assert await config.diff_snapshots("after", "current") == []

        dry = await config.restore_snapshot("before", dry_run=True)
        assert len(dry.changes) == 4 and len(await gw.endpoints.all()) == 3  # nothing changed yet
        restored = await config.restore_snapshot("before")
        assert len(restored.changes) == 4
        assert await config.diff_snapshots("before", "current") == []
        assert gw.apps.api_key(await gw.apps.get("support")) == "app-support-1"
        hook = await gw.endpoints.get(made["hook"])
        assert gw.endpoints.url(hook) == made["urls"][made["hook"]]
        assert await gw.endpoints.resolve(made["urls"][made["hook"]].rsplit("/", 1)[1]) is not None
        settings: Any = gw.endpoints.settings(hook, gw.registry.require("webhook"))
        assert settings.secret.get_secret_value() == made["hook_secret"]
        assert (await config.restore_snapshot("before")).changes == []


async def test_snapshots_are_listed_and_tags_are_unique(fresh: GatewayFactory) -> None:
    async with fresh() as gw:
        await populate(gw)
        config = service(gw)
        await config.save_snapshot("one")
        await config.save_snapshot("two")
        assert [s["tag"] for s in await config.snapshots.list()] == ["one", "two"]
        with pytest.raises(Conflict):
            await config.save_snapshot("one")
        await config.snapshots.delete("one")
        with pytest.raises(NotFound):
            await config.restore_snapshot("one")
        assert [s["tag"] for s in await config.snapshots.list()] == ["two"]


async def test_a_snapshot_restores_on_a_fresh_gateway_with_the_same_secret_key(fresh: GatewayFactory) -> None:
    """The store is what a snapshot lives in: a gateway restored from a backup of it gets everything back."""
    async with fresh() as gw:
        made = await populate(gw)
        await service(gw).save_snapshot("base")
        for endpoint_id in made["urls"]:
            await gw.endpoints.delete(endpoint_id)
        for name in ("support", "backup"):
            await gw.apps.update(name, AppUpdate(fallback=""))
        for name in ("support", "backup"):
            await gw.apps.remove(name, bound_to=[])
        await service(gw).restore_snapshot("base")
        for endpoint_id, url in made["urls"].items():
            assert gw.endpoints.url(await gw.endpoints.get(endpoint_id)) == url
        assert (await gw.apps.get("support")).fallback == "backup"


def _secret(value: str) -> Any:
    from pydantic import SecretStr

    return SecretStr(value)


async def test_snapshots_survive_a_secret_key_rotation(tmp_path: Path) -> None:
    from gateway.cli.configcmd import config_service
    from gateway.host.runtime import open_gateway
    from tests.support.configfile import registry
    from tests.support.gateway import SECRET_KEY, make_settings

    new_key = "another-secret-key-" + "n" * 40
    settings = make_settings(tmp_path)
    gw = await open_gateway(settings, registry=registry())
    made = await populate(gw)
    await service(gw).save_snapshot("keep")
    await gw.aclose()

    both = settings.with_changes(secret_key=(_secret(SECRET_KEY), _secret(new_key)))
    gw = await open_gateway(both, registry=registry())
    assert await config_service(gw).snapshots.reseal() > 0
    await gw.aclose()

    gw = await open_gateway(settings.with_changes(secret_key=(_secret(new_key),)), registry=registry())
    try:
        _, secrets = await config_service(gw).snapshots.load("keep")
        assert secrets["APP_SUPPORT_KEY"] == "app-support-1"
        assert made["hook_secret"] in secrets.values()
    finally:
        await gw.aclose()
