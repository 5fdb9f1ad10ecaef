"""Two gateway processes on one Redis; the one answering a Slack mention is frozen (SIGSTOP) past
its job lease, the other takes the job over and answers; then the frozen one is thawed (SIGCONT).
The thawed run must stop without another write: one answer in the thread, no orphaned placeholder."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable

import httpx
import pytest

from gateway.clock import SystemClock
from gateway.simulator.app import create_simulator_app
from gateway.simulator.config import SimulatorConfig
from gateway.storage.base import Job
from gateway.storage.redis import RedisStore
from tests.endpoints.slack.conftest import BOT_TOKEN, create_slack_endpoint, envelope, mention, signed
from tests.support.fake_slack import FakeSlack
from tests.support.gateway import base_url, listening_socket, live_server
from tests.support.processes import gateway_env, start_gateway, stop, wait_healthy

pytestmark = [pytest.mark.anyio, pytest.mark.live, pytest.mark.redis]

QUESTION = " ".join(f"word{n}" for n in range(40))  # echoed back slowly: an answer of a few seconds


async def job_of(store: RedisStore, predicate: Callable[[Job], bool], timeout_polls: int = 600) -> Job:
    """The (only) job once `predicate(job)` holds."""
    for _ in range(timeout_polls):
        jobs = await store.job_list()
        if jobs and predicate(jobs[0]):
            return jobs[0]
        await asyncio.sleep(0.05)
    raise AssertionError(f"the job never got there: {jobs}")


async def test_a_replica_frozen_past_its_lease_writes_nothing_after_the_takeover(redis_db: str) -> None:
    socks = [listening_socket(), listening_socket()]
    env = gateway_env(
        GATEWAY_STORE=redis_db,
        GATEWAY_JOB_LEASE="1.5",
        GATEWAY_JOB_POLL_INTERVAL="0.1",
        GATEWAY_PUBLIC_URL=base_url(socks[0]),
    )
    fake = FakeSlack(token=BOT_TOKEN)
    config = SimulatorConfig(first_token_latency=0.2, tokens_per_second=15)
    procs = [start_gateway(env, sock) for sock in socks]
    store = RedisStore.from_url(redis_db, clock=SystemClock())
    victim = None
    try:
        async with (
            live_server(create_simulator_app(config)) as simulator,
            live_server(fake.app()) as fake_base,
            httpx.AsyncClient(timeout=10) as client,
        ):
            fake.base = fake_base
            bases = [base_url(sock) for sock in socks]
            for proc, base in zip(procs, bases, strict=True):
                await wait_healthy(client, base, proc)
            url = await create_slack_endpoint(client, bases[0], simulator, fake, edit_interval=0.2)
            event = mention(QUESTION)
            raw = httpx.Request("POST", url, json=envelope(event)).content
            ack = await client.post(url, content=raw, headers={"content-type": "application/json", **signed(raw)})
            assert ack.status_code == 200

            # The answer streams into its placeholder (recorded, since it is being edited): freeze there.
            await fake.wait_for(lambda: len(fake.calls_to("chat.update")) >= 2)
            running = await job_of(store, lambda job: job.state == "running")
            owner_pid = int((running.lease_owner or "").split(":")[1])
            victim = next(proc for proc in procs if proc.pid == owner_pid)
            victim_base = bases[procs.index(victim)]
            os.kill(victim.pid, signal.SIGSTOP)

            done = await job_of(store, lambda job: job.state == "done")
            assert done.attempts == 2 and done.result is not None and done.result["status"] == "answered"
            calls_at_takeover_end = len(fake.calls)
            os.kill(victim.pid, signal.SIGCONT)

            # The thawed process reports how its run ended once it has ended.
            for _ in range(600):
                metrics = (await client.get(f"{victim_base}/metrics")).text
                if 'gateway_jobs_total{kind="plugin"' in metrics:
                    break
                await asyncio.sleep(0.05)
            stale_calls = [call.method for call in fake.calls[calls_at_takeover_end:]]
            assert stale_calls == []  # not one write after the takeover
            assert 'gateway_jobs_total{kind="plugin",outcome="lost"} 1' in metrics, metrics
            thread = fake.thread("C1", event["ts"])
            assert [m.text for m in thread] == [f"You said: {QUESTION}"]  # one answer, no "…thinking" left
            assert len(fake.calls_to("chat.postMessage")) == 1  # the rerun took over the placeholder
            final = await store.job_get(done.id)
            assert final is not None and final.state == "done" and final.attempts == 2
    finally:
        if victim is not None and victim.poll() is None:
            os.kill(victim.pid, signal.SIGCONT)
        for proc in procs:
            stop(proc)
        for sock in socks:
            sock.close()
        await store.aclose()
