"""Admin API: key rotation, export / apply and snapshots over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from gateway.simulator.app import create_simulator_app
from gateway.simulator.config import SimulatorConfig
from tests.support.configfile import registry
from tests.support.gateway import Running, admin_headers, make_settings, running_app
from tests.support.keygate import KeyGate

pytestmark = pytest.mark.anyio

API = "/admin/api"


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    sim = create_simulator_app(SimulatorConfig(api_keys=frozenset({"app-old", "app-new"}), first_token_latency=0))
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=KeyGate({"app-old": sim, "app-new": sim}))) as dify,
        running_app(make_settings(tmp_path), registry=registry(), http=dify, run_workers=False) as running,
    ):
        yield running


async def call(running: Running, method: str, path: str, body: object = None) -> httpx.Response:
    return await running.client.request(method, API + path, json=body, headers=admin_headers())


async def test_rotation_routes(running: Running) -> None:
    app = {"name": "support", "base_url": "http://dify.test/v1", "api_key": "app-old", "mode": "chat"}
    assert (await call(running, "POST", "/apps", app)).status_code == 201
    refused = await call(running, "POST", "/apps/support/keys", {"api_key": "app-unknown"})
    assert refused.status_code == 502 and "app-unknown" not in refused.text
    rotated = await call(running, "POST", "/apps/support/keys", {"api_key": "app-new", "grace_seconds": 60})
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["previous_key"] == "••••••••" and "app-old" not in rotated.text
    retired = await call(running, "DELETE", "/apps/support/keys/previous")
    assert retired.json()["previous_key"] is None

    created = (await call(running, "POST", "/endpoints", {"plugin": "webhook", "apps": ["support"]})).json()
    secret = await call(running, "POST", f"/endpoints/{created['id']}/secrets/rotate", {"grace_seconds": 60})
    assert secret.status_code == 200, secret.text
    assert secret.json()["secrets"]["secret"].startswith("whsec_")
    assert list(secret.json()["previous_secrets_expire_at"]) == ["secret"]
    assert created["secrets"]["secret"] not in secret.text
    retired_secret = await call(running, "POST", f"/endpoints/{created['id']}/secrets/retire", {})
    assert retired_secret.json()["previous_secrets_expire_at"] == {}


async def test_config_and_snapshot_routes(running: Running) -> None:
    app = {"name": "support", "base_url": "http://dify.test/v1", "api_key": "app-old", "mode": "chat"}
    await call(running, "POST", "/apps", app)
    created = (await call(running, "POST", "/endpoints", {"plugin": "echo", "settings": {"greeting": "hi"}})).json()
    exported = (await call(running, "GET", "/config")).json()
    assert "${APP_SUPPORT_KEY}" in exported["yaml"] and "app-old" not in exported["yaml"]
    assert (await call(running, "POST", "/snapshots", {"tag": "v1"})).status_code == 201

    changed = exported["yaml"].replace("greeting: hi", "greeting: hello")
    body = {"yaml": changed, "variables": {"APP_SUPPORT_KEY": "app-old"}, "dry_run": True}
    dry = (await call(running, "POST", "/config/apply", body)).json()
    assert dry["changes"] == [
        {"action": "update", "kind": "endpoint", "key": created["id"], "fields": ["settings.greeting"]}
    ]
    applied = (await call(running, "POST", "/config/apply", {**body, "dry_run": False})).json()
    assert applied["changes"] == dry["changes"]

    diff = (await call(running, "GET", "/snapshots/v1/diff/current")).json()
    assert [c["key"] for c in diff["changes"]] == [created["id"]]
    listed = (await call(running, "GET", "/snapshots")).json()["snapshots"]
    assert [s["tag"] for s in listed] == ["v1"]
    restored = (await call(running, "POST", "/snapshots/restore", {"tag": "v1"})).json()
    assert len(restored["changes"]) == 1
    assert (await call(running, "GET", f"/endpoints/{created['id']}")).json()["settings"]["greeting"] == "hi"
    assert (await call(running, "DELETE", "/snapshots/v1")).json() == {"deleted": "v1"}

    bad = await call(running, "POST", "/config/apply", {"yaml": "version: 1\napps:\n  - name: x\n    mode: nope\n"})
    assert bad.status_code == 422
    error = bad.json()["error"]
    assert error["code"] == "validation_failed" and "line 4" in error["message"]
    assert {"field": "apps.0.mode", "line": 4} == {k: error["errors"][0][k] for k in ("field", "line")}
