"""Rotating GATEWAY_SECRET_KEY: add the new key, reseal, rotate the named URLs, drop the old key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import SecretStr

from endpoints.echo import plugin as echo
from gateway.admin.usecases import reseal_secrets
from gateway.host.registry import PluginRegistry
from gateway.host.runtime import open_gateway
from gateway.records.apps import AppIn
from tests.support.gateway import SECRET_KEY, make_settings

pytestmark = pytest.mark.anyio

NEW_KEY = "brand-new-secret-key-" + "n" * 40


async def test_a_secret_key_can_be_rotated_without_losing_secrets_or_urls(tmp_path: Path) -> None:
    registry = PluginRegistry([echo])
    old = make_settings(tmp_path)
    gateway = await open_gateway(old, registry=registry)
    await gateway.apps.add(AppIn(name="a", base_url="http://dify.test/v1", api_key=SecretStr("app-key-1"), mode="chat"))
    record, _ = await gateway.endpoints.create("echo", [], {"token": "echo-token-123"})
    await gateway.aclose()

    both = old.with_changes(secret_key=(SecretStr(SECRET_KEY), SecretStr(NEW_KEY)))
    gateway = await open_gateway(both, registry=registry)
    report = await reseal_secrets(apps=gateway.apps, endpoints=gateway.endpoints)
    assert report["apps_resealed"] == ["a"]
    assert report["endpoint_values_resealed"] == 2  # the echo token and the URL token
    assert report["endpoints_to_rotate"] == [record.id]
    _, new_url = await gateway.endpoints.rotate(record.id, grace=0)
    assert (await reseal_secrets(apps=gateway.apps, endpoints=gateway.endpoints))["endpoints_to_rotate"] == []
    await gateway.aclose()

    only_new = old.with_changes(secret_key=(SecretStr(NEW_KEY),))
    gateway = await open_gateway(only_new, registry=registry)
    try:
        app = await gateway.apps.get("a")
        assert gateway.apps.api_key(app) == "app-key-1"
        current = await gateway.endpoints.get(record.id)
        assert gateway.endpoints.settings(current, echo).token.get_secret_value() == "echo-token-123"  # type: ignore[attr-defined]
        assert gateway.endpoints.url(current) == new_url
        assert await gateway.endpoints.resolve(new_url.split("/e/")[1]) is not None
        assert "echo-token-123" not in json.dumps(await gateway.store.doc_get("endpoints", record.id))
    finally:
        await gateway.aclose()
