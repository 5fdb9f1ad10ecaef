"""Upstream URLs set by workspace tokens (security.md §6): a workspace admin may point Dify apps and
plugin APIs only at public addresses, or at what the operator allows for everyone
(GATEWAY_PRIVATE_UPSTREAMS), checked when set and again on every connection (pinned resolution,
so DNS rebinding doesn't get through). The operator may use any address."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from starlette.types import ASGIApp, Receive, Scope, Send

from endpoints.slack.answer import answer_event
from endpoints.slack.events import SlackTrigger
from gateway.clock import FakeClock
from gateway.exceptions import UpstreamError
from gateway.host.runtime import Gateway, open_gateway
from gateway.plugin import JobInfo, RetryJob
from gateway.records.admintokens import AdminTokenIn
from gateway.records.apps import AppIn
from gateway.security.upstreams import UpstreamGuard, upstream_policy
from gateway.simulator.app import create_simulator_app
from gateway.testing.platforms.slack import FakeSlack
from tests.support.gateway import Running, admin_headers, live_server, make_settings, running_app

pytestmark = pytest.mark.anyio

API = "/admin/api"
KEY = "app-simulator"
PRIVATE = ["http://127.0.0.1:9/v1", "http://169.254.169.254/latest", "http://10.1.2.3/v1", "http://[::1]/v1"]


async def _team_admin(gw: Gateway) -> dict[str, str]:
    _, token = await gw.admin_tokens.create(AdminTokenIn(workspace="default", role="admin"))
    return {"authorization": f"Bearer {token}"}


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    async with running_app(make_settings(tmp_path), run_workers=False) as running:
        yield running


def _app(base_url: str, name: str = "support") -> dict[str, Any]:
    return {"name": name, "base_url": base_url, "api_key": KEY, "mode": "chat"}


@pytest.mark.parametrize("base_url", PRIVATE)
async def test_a_workspace_admin_cannot_point_an_app_at_a_private_address(running: Running, base_url: str) -> None:
    team = await _team_admin(running.gateway)
    refused = await running.client.post(API + "/apps", json=_app(base_url), headers=team)
    assert refused.status_code == 400, refused.text
    message = refused.json()["error"]["message"]
    assert "non-public address" in message and "GATEWAY_PRIVATE_UPSTREAMS" in message
    assert (await running.client.get(API + "/apps", headers=team)).json()["apps"] == []
    # The operator may: a Dify on the private network is the usual case.
    assert (await running.client.post(API + "/apps", json=_app(base_url), headers=admin_headers())).status_code == 201


async def test_changing_the_base_url_is_checked_for_workspace_tokens(running: Running) -> None:
    team = await _team_admin(running.gateway)
    created = await running.client.post(API + "/apps", json=_app("http://10.0.0.7/v1"), headers=admin_headers())
    assert created.status_code == 201
    # The operator's URL stays usable: a workspace admin may change the key, mode or fallback.
    kept = await running.client.patch(API + "/apps/support", json={"mode": "agent-chat"}, headers=team)
    assert kept.status_code == 200 and kept.json()["base_url"] == "http://10.0.0.7/v1"
    moved = await running.client.patch(API + "/apps/support", json={"base_url": "http://192.168.0.1/v1"}, headers=team)
    assert moved.status_code == 400 and "non-public" in moved.json()["error"]["message"]
    assert (await running.gateway.apps.get("support")).base_url == "http://10.0.0.7/v1"


async def test_config_apply_by_a_workspace_token_is_checked_before_anything_changes(running: Running) -> None:
    team = await _team_admin(running.gateway)
    yaml = (
        "version: 1\napps:\n  - name: public\n    base_url: https://1.1.1.1/v1\n    mode: chat\n    api_key: app-x\n"
        "  - name: inside\n    base_url: http://172.16.0.9/v1\n    mode: chat\n    api_key: app-y\n"
    )
    refused = await running.client.post(API + "/config/apply", json={"yaml": yaml}, headers=team)
    assert refused.status_code == 400 and "apps.inside.base_url" in refused.json()["error"]["message"]
    assert await running.gateway.apps.all() == []  # nothing half-applied
    applied = await running.client.post(API + "/config/apply", json={"yaml": yaml}, headers=admin_headers())
    assert applied.status_code == 200, applied.text


@pytest.mark.parametrize(
    ("plugin", "settings"),
    [
        ("telegram", {"bot_token": "123456:" + "A" * 35, "api_base_url": "http://127.0.0.1:6379"}),
        (
            "discord",
            {
                "application_id": "123456789012345678",
                "public_key": "ab" * 32,
                "api_base_url": "http://169.254.169.254/a",
            },
        ),
        ("slack", {"api_base_url": "http://10.0.0.1/api"}),
        (
            "lark",
            {
                "app_id": "cli_abcd1234",
                "app_secret": "s" * 32,
                "encrypt_key": "e" * 32,
                "api_base_url": "http://192.168.1.1",
            },
        ),
    ],
)
async def test_a_workspace_admin_cannot_point_a_plugin_api_at_a_private_address(
    running: Running, plugin: str, settings: dict[str, Any]
) -> None:
    team = await _team_admin(running.gateway)
    assert (await running.client.post(API + "/apps", json=_app("https://1.1.1.1/v1"), headers=team)).status_code == 201
    body = {"plugin": plugin, "apps": ["support"], "settings": settings}
    refused = await running.client.post(API + "/endpoints", json=body, headers=team)
    assert refused.status_code == 400, refused.text
    assert "setting api_base_url resolves to a non-public address" in refused.json()["error"]["message"]
    created = await running.client.post(API + "/endpoints", json=body, headers=admin_headers())
    assert created.status_code == 201, created.text
    assert not (await running.gateway.endpoints.get(created.json()["id"])).guarded
    # Changing it later is checked too, and a workspace token's change leaves the endpoint guarded.
    public = {"api_base_url": "https://1.1.1.1/api"}
    path = f"{API}/endpoints/{created.json()['id']}"
    assert (await running.client.patch(path, json={"settings": settings}, headers=team)).status_code == 200  # unchanged
    assert (await running.client.patch(path, json={"settings": public}, headers=team)).status_code == 200
    assert (await running.gateway.endpoints.get(created.json()["id"])).guarded
    back = await running.client.patch(path, json={"settings": settings}, headers=team)
    assert back.status_code == 400


# -- at connect time ------------------------------------------------------------------------------


class _Counted:
    """An ASGI app that counts the requests it gets."""

    def __init__(self, app: ASGIApp) -> None:
        self.app, self.requests = app, 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.requests += 1
        await self.app(scope, receive, send)


class _Rebinding:
    """DNS that answers `first` once, then 127.0.0.1 (where the simulator listens)."""

    def __init__(self, first: str) -> None:
        self.answers: Iterator[str] = iter([first])

    async def __call__(self, host: str, port: int) -> list[str]:
        return [next(self.answers, "127.0.0.1")]


async def _gateway(tmp_path: Path, guard: UpstreamGuard) -> Gateway:
    return await open_gateway(make_settings(tmp_path), upstreams=guard)


async def test_dns_rebinding_after_the_check_does_not_reach_a_private_address(tmp_path: Path) -> None:
    simulator = _Counted(create_simulator_app())
    async with live_server(simulator) as base:
        port = httpx.URL(base).port
        guard = UpstreamGuard(upstream_policy(()), resolver=_Rebinding("93.184.216.34"), timeout=httpx.Timeout(5.0))
        gw = await _gateway(tmp_path, guard)
        try:
            url = f"http://dify.rebind.test:{port}/v1"
            await gw.apps.add(AppIn(name="support", base_url=url, api_key=SecretStr(KEY), mode="chat"), guarded=True)
            with pytest.raises(UpstreamError, match="dify.rebind.test"):
                await gw.apps.check("support")  # GET /info: resolved again, now to 127.0.0.1
            endpoint, _, _ = await gw.endpoints.create_with_secrets("webhook", ["support"], {}, guarded=True)
            context = await gw.contexts.build(endpoint, gw.registry.require("webhook"))
            with pytest.raises(httpx.ConnectError, match="non-public"):
                await context.http.get(f"http://dify.rebind.test:{port}/v1/info")
            assert simulator.requests == 0
        finally:
            await gw.aclose()
            await guard.aclose()


async def test_the_operator_may_allow_private_upstreams_for_everyone(tmp_path: Path) -> None:
    simulator = _Counted(create_simulator_app())
    async with live_server(simulator) as base:
        port = httpx.URL(base).port
        policy = upstream_policy(["127.0.0.0/8"])
        guard = UpstreamGuard(policy, resolver=_Rebinding("127.0.0.1"), timeout=httpx.Timeout(5.0))
        gw = await _gateway(tmp_path, guard)
        try:
            url = f"http://dify.inside.test:{port}/v1"
            await gw.apps.add(AppIn(name="support", base_url=url, api_key=SecretStr(KEY), mode="chat"), guarded=True)
            info = await gw.apps.check("support")  # through the guard, to the address it checked
            assert info["mode"] == "chat" and simulator.requests >= 1
        finally:
            await gw.aclose()
            await guard.aclose()


async def test_a_workspace_slack_endpoints_web_api_session_is_checked_at_connect_time(tmp_path: Path) -> None:
    """Slack's Web API client brings its own aiohttp session: it connects through the same check."""
    fake = FakeSlack(token="xoxb-test-token")
    async with live_server(fake.app()) as base, live_server(create_simulator_app()) as dify:
        port = httpx.URL(base).port
        # At write time "localhost" answers a public address; at connect time, where it really is.
        guard = UpstreamGuard(upstream_policy(()), resolver=_Rebinding("93.184.216.34"), timeout=httpx.Timeout(5.0))
        # The Slack client's retries back off on the gateway's clock: a fake one takes no time.
        gw = await open_gateway(make_settings(tmp_path), upstreams=guard, clock=FakeClock(time.time()))
        try:
            await gw.apps.add(AppIn(name="support", base_url=f"{dify}/v1", api_key=SecretStr(KEY), mode="chat"))
            settings = {
                "signing_secret": "8f742231b10e8888abcd99yyyzzz85a5",
                "bot_token": "xoxb-test-token",
                "api_base_url": f"http://localhost:{port}/api",
            }
            trigger = SlackTrigger(
                kind="mention", event_id="Ev1", team="T1", channel="C1", channel_type="channel", user="U1",
                text="<@UBOT> hi", ts="1.1", thread_ts="1.1", bot_user_id="UBOT",
            )  # fmt: skip
            job = JobInfo(id="job-1", name="answer", payload=trigger.to_payload(), attempt=1, key=None)
            slack = gw.registry.require("slack")
            guarded, _, _ = await gw.endpoints.create_with_secrets("slack", ["support"], settings, guarded=True)
            with pytest.raises(RetryJob, match="could not be reached"):
                await answer_event(job, await gw.contexts.build(guarded, slack))
            assert fake.calls == []
            # The operator's endpoint with the same URL reaches it: the check is the workspace's.
            trusted, _, _ = await gw.endpoints.create_with_secrets("slack", ["support"], settings)
            operator = replace(job, id="job-2", payload=replace(trigger, ts="1.2").to_payload())
            done = await answer_event(operator, await gw.contexts.build(trusted, slack))
            assert done["status"] == "answered", done
            assert fake.calls_to("chat.postMessage")
        finally:
            await gw.aclose()
            await guard.aclose()
