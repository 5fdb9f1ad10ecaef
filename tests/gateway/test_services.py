"""The `Host` services get: settings their package declared, endpoints with decrypted settings,
fresh plugin contexts (none while disabled), the clock and the store's atomic key operations."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from endpoints.echo import plugin as echo
from gateway.host.registry import PluginRegistry
from gateway.host.runtime import Gateway, open_gateway
from gateway.host.services import Host, HostedEndpoint
from gateway.plugin import NotFound
from tests.support.gateway import make_settings

pytestmark = pytest.mark.anyio


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    settings = make_settings(tmp_path, extra={"my_service": "on"})
    gateway = await open_gateway(settings, registry=PluginRegistry([echo]))
    yield gateway
    await gateway.aclose()


async def test_settings_declared_by_a_package_are_read_through_the_host(gateway: Gateway) -> None:
    host: Host = gateway.host
    assert host.setting("my_service") == "on"
    assert host.setting("not_set") == ""
    assert host.clock is gateway.clock


async def test_an_endpoint_comes_with_its_settings_decrypted(gateway: Gateway) -> None:
    host: Host = gateway.host
    record, _ = await gateway.endpoints.create("echo", [], {"token": "echo-token-123"})
    endpoint = await host.endpoint(record.id)
    assert (endpoint.id, endpoint.plugin, endpoint.enabled) == (record.id, "echo", True)
    assert isinstance(endpoint, HostedEndpoint)
    assert endpoint.settings.token.get_secret_value() == "echo-token-123"
    with pytest.raises(NotFound):
        await host.endpoint("ep_missing")


async def test_a_context_is_built_per_call_and_none_while_disabled(gateway: Gateway) -> None:
    host: Host = gateway.host
    record, _ = await gateway.endpoints.create("echo", [], {})
    ctx = await host.context(record.id)
    assert ctx is not None and ctx.endpoint.id == record.id
    await gateway.endpoints.set_enabled(record.id, False)
    assert await host.context(record.id) is None
    with pytest.raises(NotFound):
        await host.context("ep_missing")


async def test_the_store_offers_the_atomic_operations_of_a_lease(gateway: Gateway) -> None:
    store = gateway.host.store
    assert await store.kv_set_if_absent("svc:lease", "me", ttl=30)
    assert not await store.kv_set_if_absent("svc:lease", "other", ttl=30)
    assert await store.kv_expire_if_equals("svc:lease", "me", 30)
    assert not await store.kv_delete_if_equals("svc:lease", "other")
    assert await store.kv_get("svc:lease") == "me"
    assert await store.kv_delete_if_equals("svc:lease", "me")
