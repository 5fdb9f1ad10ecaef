"""Usage totals equal what the Dify simulator reported, over a mixed run with a SIGKILL in the middle.

A real gateway process answers webhook (synchronous, and queued with callbacks) and OpenAI calls;
it is killed while four answers are in flight (three queued webhook jobs, one OpenAI stream), and a
second process on the same port takes over: the jobs run again and answer. Every answer the
simulator finished (its ledger) is counted exactly once; the ones cut off by the kill sent no usage
and count nothing; nothing is counted twice.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from pydantic import SecretStr

from gateway.host.registry import PluginRegistry
from gateway.host.runtime import open_gateway
from gateway.records.apps import AppIn
from gateway.settings import Settings
from gateway.simulator.app import create_simulator_app
from gateway.simulator.config import SimulatorConfig
from tests.support.gateway import ADMIN_TOKEN, admin_headers, base_url, listening_socket, live_server
from tests.support.processes import gateway_env, start_gateway, stop, wait_healthy
from tests.support.webhooks import Receiver, signed_headers

pytestmark = [pytest.mark.anyio, pytest.mark.live]

SLOW = "[[fault:slow]]"  # the simulator's first token comes after `slow_first_token_latency`


async def sim_stats(http: httpx.AsyncClient, simulator: str) -> dict[str, Any]:
    stats: dict[str, Any] = (await http.get(f"{simulator}/_sim/stats")).json()
    return stats


async def until(check: Any, what: str, tries: int = 600) -> None:
    for _ in range(tries):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
async def test_usage_totals_match_the_simulator_across_a_sigkill(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    store = request.getfixturevalue("redis_db") if backend == "redis" else f"sqlite:///{tmp_path / 'gw.db'}"
    sock = listening_socket()
    base = base_url(sock)
    env = gateway_env(
        GATEWAY_STORE=store,
        GATEWAY_PUBLIC_URL=base,
        GATEWAY_JOB_LEASE="1.5",
        GATEWAY_JOB_POLL_INTERVAL="0.1",
        GATEWAY_CALLBACK_ALLOW_HOSTS="127.0.0.1",
        GATEWAY_CALLBACK_ALLOW_HTTP="true",
        GATEWAY_RATE_LIMIT_PER_MINUTE="0",
    )
    config = SimulatorConfig(first_token_latency=0, tokens_per_second=0, slow_first_token_latency=5.0, ping_interval=1)
    receiver = Receiver(secret="")
    settings = Settings.from_env(env).with_changes(admin_token=SecretStr(ADMIN_TOKEN))
    async with (
        live_server(create_simulator_app(config)) as simulator,
        live_server(receiver.app()) as receiver_base,
        httpx.AsyncClient(timeout=30) as http,
    ):
        setup = await open_gateway(settings, registry=PluginRegistry.from_entry_points())
        try:
            await setup.apps.add(
                AppIn(name="a", base_url=f"{simulator}/v1", api_key=SecretStr("app-simulator"), mode="chat")
            )
            _, hook_url, hook = await setup.endpoints.create_with_secrets("webhook", ["a"], {})
            _, openai_url, keys = await setup.endpoints.create_with_secrets("openai", ["a"], {})
        finally:
            await setup.aclose()
        receiver.secret = hook["secret"]

        async def webhook(query: str, **extra: Any) -> httpx.Response:
            body = json.dumps({"query": query, "user": "hook-user", **extra}).encode()
            return await http.post(hook_url, content=body, headers=signed_headers(hook["secret"], body))

        chat = openai.AsyncOpenAI(base_url=f"{openai_url}/v1", api_key=keys["api_key"], max_retries=0)
        first = start_gateway(env, sock)
        second: subprocess.Popen[bytes] | None = None
        try:
            await wait_healthy(http, base, first)
            # Phase 1: answers that finish.
            for i in range(3):
                assert (await webhook(f"question {i}")).status_code == 200
            for i in range(2):
                await chat.chat.completions.create(model="a", messages=[{"role": "user", "content": f"hi {i} " * i}])

            # Phase 2: four answers in flight (no usage sent yet), then SIGKILL.
            for i in range(3):
                queued = await webhook(f"slow {i} {SLOW}", callback_url=f"{receiver_base}/hook")
                assert queued.status_code == 202
            cut = asyncio.create_task(
                chat.chat.completions.create(model="a", messages=[{"role": "user", "content": f"cut {SLOW}"}])
            )

            async def four_in_flight() -> bool:
                return bool((await sim_stats(http, simulator))["active_tasks"] == 4)

            await until(four_in_flight, "four answers in flight")
            os.kill(first.pid, signal.SIGKILL)
            first.wait()
            with pytest.raises(openai.APIConnectionError):
                await cut

            async def all_cut() -> bool:
                return bool((await sim_stats(http, simulator))["active_tasks"] == 0)

            await until(all_cut, "the cut answers' streams closed")
            finished_before = (await sim_stats(http, simulator))["usage_reported"]["answers"]
            assert finished_before == 5  # the four cut answers sent no usage

            # Phase 3: another process takes over; the queued jobs run again, more answers come.
            second = start_gateway(env, sock)
            await wait_healthy(http, base, second)
            await chat.chat.completions.create(model="a", messages=[{"role": "user", "content": "after"}])
            assert (await webhook("after the crash, a longer question")).status_code == 200
            await receiver.wait(3, timeout=40)
            assert sorted(r["payload"]["type"] for r in receiver.received) == ["answer.completed"] * 3

            stats = await sim_stats(http, simulator)
            ledger: dict[str, dict[str, Any]] = stats["usage_by_answer"]
            assert len(ledger) == 10 == stats["usage_reported"]["answers"]

            async def counted() -> dict[str, Any]:
                response = await http.get(f"{base}/admin/api/usage", params={"by": "day"}, headers=admin_headers())
                assert response.status_code == 200, response.text
                report: dict[str, Any] = response.json()
                return report

            report = await counted()
            total = report["total"]
            assert total["answers"] == total["ok"] == len(ledger)
            for name in ("prompt_tokens", "completion_tokens", "total_tokens"):
                assert total[name] == sum(entry[name] for entry in ledger.values()), name
            assert Decimal(total["cost"]["USD"]) == sum(Decimal(entry["total_price"]) for entry in ledger.values())
        finally:
            await chat.close()
            for proc in (first, second):
                if proc is not None and proc.poll() is None:
                    proc.terminate()  # a graceful stop may take a while on a machine shared with other tests
                    proc.wait(timeout=60)
                stop(proc)
            sock.close()

        # Each answer the simulator finished is recorded once, under its own id.
        check = await open_gateway(settings, registry=PluginRegistry.from_entry_points())
        try:
            for answer_id in ledger:
                stored = await check.store.kv_get(f"usage:rec:{answer_id}")
                assert stored is not None and json.loads(stored)["key"] == answer_id
        finally:
            await check.aclose()
