"""Admin API routes the web console draws from: the overview, callback targets of jobs, and what
a plugin generates (for its settings form)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.admin.overview import MINUTES
from gateway.delivery.callback_jobs import CALLBACK_JOB, CALLBACK_SECRETS
from gateway.records.requestlog import RequestLogEntry
from gateway.testing.clock import VirtualClock
from tests.support.gateway import Running, admin_headers, make_settings, running_app

pytestmark = pytest.mark.anyio


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    async with running_app(make_settings(tmp_path), run_workers=False, clock=VirtualClock()) as running:
        yield running


async def echo_endpoint(running: Running) -> str:
    created = await running.client.post("/admin/api/endpoints", json={"plugin": "echo"}, headers=admin_headers())
    assert created.status_code == 201, created.text
    endpoint_id: str = created.json()["id"]
    return endpoint_id


def entry(time: float, status: int) -> RequestLogEntry:
    return RequestLogEntry(time, f"r{time}", "POST", "/", status, 1.0, "ok")


async def test_the_overview_counts_requests_and_errors_per_minute(running: Running) -> None:
    gw = running.gateway
    endpoint_id = await echo_endpoint(running)
    now = gw.clock.time()
    for when, status in [(now, 200), (now, 401), (now, 500), (now - 60, 200), (now - 3600, 200)]:
        gw.requests.record(endpoint_id, entry(when, status))
    await gw.requests.flush()
    overview = (await running.client.get("/admin/api/overview", headers=admin_headers())).json()
    assert overview["store_ok"] is True
    assert len(overview["minutes"]) == len(overview["requests"]) == MINUTES
    assert overview["minutes"][-1] <= now < overview["minutes"][-1] + 60
    assert overview["requests"][-2:] == [1, 3]  # the request an hour ago is outside the window
    assert overview["errors"][-2:] == [0, 2]
    assert sum(overview["requests"]) == 4
    assert overview["endpoints"][endpoint_id] == overview["requests"]
    assert overview["answers"] == {"running": 0, "waiting": 0, "limit": gw.settings.max_concurrent_answers}
    assert overview["jobs"] == {"queued": 0, "running": 0, "dead": 0}


async def test_the_overview_counts_waiting_and_dead_jobs(running: Running) -> None:
    gw = running.gateway
    await gw.queue.enqueue("nothing", {})
    dead = await gw.queue.enqueue("nothing", {})
    assert await gw.store.job_claim("w", gw.clock.time(), 30, job_id=dead.id)
    assert await gw.store.job_dead(dead.id, "w", "broke")
    overview = (await running.client.get("/admin/api/overview", headers=admin_headers())).json()
    assert overview["jobs"] == {"queued": 1, "running": 0, "dead": 1}


async def test_the_overview_needs_the_token(running: Running) -> None:
    assert (await running.client.get("/admin/api/overview")).status_code == 401


async def test_a_callback_job_shows_its_target_without_path_or_query(running: Running) -> None:
    gw = running.gateway
    endpoint_id = await echo_endpoint(running)
    url = "https://hooks.example.com:8443/private/path?token=hunter2"
    payload = {"url": url, "body": "{}", "msg_id": "msg_1", "setting": "secret"}
    job = await gw.queue.enqueue(CALLBACK_JOB, payload, endpoint_id=endpoint_id, sealed=CALLBACK_SECRETS)
    plain = await gw.queue.enqueue("other", {"url": url})
    listed = await running.client.get("/admin/api/jobs", headers=admin_headers())
    by_id = {j["id"]: j for j in listed.json()["jobs"]}
    assert by_id[job.id]["callback_target"] == "https://hooks.example.com:8443"
    assert by_id[plain.id]["callback_target"] is None
    shown = await running.client.get(f"/admin/api/jobs/{job.id}", headers=admin_headers())
    assert shown.json()["callback_target"] == "https://hooks.example.com:8443"
    assert "hunter2" not in listed.text + shown.text and "private" not in listed.text + shown.text


async def test_plugins_say_which_settings_the_gateway_generates(running: Running) -> None:
    plugins = (await running.client.get("/admin/api/plugins", headers=admin_headers())).json()["plugins"]
    by_name = {p["name"]: p for p in plugins}
    assert by_name["webhook"]["generated_settings"] == ["secret"]
    assert by_name["slack"]["generated_settings"] == []
