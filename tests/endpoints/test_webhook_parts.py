"""Parts of the webhook plugin on their own: the SSE relay (a real `JobRun`, a fake store and context)
and the structured-answer check; no servers."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import pytest

import endpoints.webhook as webhook
from gateway.clock import SystemClock
from gateway.jobs import JobRun

pytestmark = pytest.mark.anyio


@dataclass
class _Job:
    state: str = "done"
    last_error: str | None = None


@dataclass
class _Store:
    async def job_get(self, job_id: str) -> _Job:
        return _Job()


@dataclass
class _Status:
    result: dict[str, Any]


@dataclass
class _Jobs:
    result: dict[str, Any] = field(default_factory=dict)

    async def get(self, job_id: str) -> _Status:
        return _Status(self.result)


@dataclass
class _Context:
    jobs: _Jobs


def _events(frames: list[bytes]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for frame in frames:
        name, data = frame.decode().strip().split("\n")
        out.append((name.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    return out


async def test_deltas_after_a_heartbeat_are_still_relayed(monkeypatch: pytest.MonkeyPatch) -> None:
    # A pause longer than the heartbeat (a slow first token, a long tool call) must add a ping,
    # not end the relay: wait_for() used to cancel the events generator, losing every later delta.
    monkeypatch.setattr(webhook, "HEARTBEAT_SECONDS", 0.02)
    run = JobRun("job_1", _Store(), SystemClock(), local=True)  # type: ignore[arg-type]
    ctx = _Context(_Jobs({"status": "succeeded", "answer": "Hello there"}))

    async def handler() -> None:
        run.emit({"type": "delta", "text": "Hello"})
        await asyncio.sleep(0.1)  # silence: a few heartbeats
        run.emit({"type": "delta", "text": " there"})
        run.finish()

    task = asyncio.create_task(handler())
    frames = [frame async for frame in webhook._sse(run, ctx)]  # type: ignore[arg-type]
    await task
    events = _events(frames)
    names = [name for name, _ in events]
    assert names[0] == "task" and names[-1] == "done" and "ping" in names
    assert [data["text"] for name, data in events if name == "delta"] == ["Hello", " there"]


async def test_a_task_whose_app_is_no_longer_bound_fails_instead_of_retrying(tmp_path: Any) -> None:
    from gateway.apps import AppIn
    from gateway.plugin import JobInfo
    from gateway.registry import PluginRegistry
    from tests.support.gateway import make_settings, running_app

    async with running_app(make_settings(tmp_path), registry=PluginRegistry([webhook.plugin]), run_workers=False) as r:
        await r.gateway.apps.add(AppIn(name="a", base_url="http://dify.test/v1", api_key="k", mode="chat"))
        record, _ = await r.gateway.endpoints.create("webhook", ["a"], {})
        ctx = await r.gateway.context(record, webhook.plugin)
        job = JobInfo("job_1", "answer", {"query": "q", "user": "u", "app": "gone"}, 1, None)
        result = await webhook.answer_job(job, ctx)
    assert result["status"] == "failed"
    assert result["error"]["code"] == "not_found"
