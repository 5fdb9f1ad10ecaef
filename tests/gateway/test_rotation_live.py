"""Rotating an app's key and a webhook endpoint's secret while answers flow: not one fails.

A real uvicorn gateway answers a steady loop of signed webhook requests from a Dify (simulated
apps behind `KeyGate`); the operator's commands run through a second gateway on the same store,
as `dify-gateway apps add-key` and `endpoints rotate-secret` would from another process.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from starlette.types import ASGIApp

from gateway.host.runtime import open_gateway
from gateway.http.app import create_app
from gateway.records.apps import AppIn
from gateway.simulator.app import create_simulator_app
from gateway.simulator.config import SimulatorConfig
from tests.support.gateway import live_app, live_server, make_settings
from tests.support.keygate import KeyGate
from tests.support.webhooks import signed_headers

pytestmark = [pytest.mark.anyio, pytest.mark.live]

CLIENTS = 4
STEP = 12  # answers that must succeed between two steps of the rotation


class Load:
    """`CLIENTS` loops of signed requests; each answer counted as succeeded or kept as a failure."""

    def __init__(self, client: httpx.AsyncClient, url: str, secret: str) -> None:
        self.client = client
        self.url = url
        self.secret = secret  # what the senders sign with; changed when they move to the new one
        self.succeeded = 0
        self.failures: list[str] = []
        self.stopped = False
        self.progress = asyncio.Condition()

    async def sender(self, number: int) -> None:
        sent = 0
        while not self.stopped:
            sent += 1
            body = json.dumps({"query": f"question {number}.{sent}", "user": f"user-{number}"}).encode()
            response = await self.client.post(self.url, content=body, headers=signed_headers(self.secret, body))
            answer = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
            async with self.progress:
                if response.status_code == 200 and answer.get("status") == "succeeded":
                    self.succeeded += 1
                else:
                    self.failures.append(f"{response.status_code}: {response.text[:200]}")
                self.progress.notify_all()

    async def more(self, count: int = STEP, *, until: Callable[[], bool] = lambda: True) -> None:
        """Wait until `count` more answers succeeded, and `until()` holds."""
        target = self.succeeded + count
        async with self.progress:
            await asyncio.wait_for(self.progress.wait_for(lambda: self.succeeded >= target and until()), 60)

    async def verified(self, secret: str, *, accepted: bool) -> None:
        """Wait until the gateway accepts (or refuses) requests signed with `secret` (its caches take
        up to a second to see a change made by another process): a signed task lookup answers 404
        when the signature passed, 401 when not."""
        while True:
            probe = await self.client.get(f"{self.url}/tasks/job_none", headers=signed_headers(secret, b""))
            if probe.status_code == (404 if accepted else 401):
                return
            await self.more(1)


async def test_rotating_a_key_and_a_secret_under_load_fails_no_answer(tmp_path: Path) -> None:
    support = create_simulator_app(
        SimulatorConfig(api_keys=frozenset({"app-old", "app-new"}), first_token_latency=0.01, tokens_per_second=0)
    )
    gate = KeyGate({"app-old": support, "app-new": support})

    def gateway_app(url: str) -> ASGIApp:
        return create_app(make_settings(tmp_path, public_url=url))

    async with (
        live_server(gate) as dify,
        live_app(gateway_app) as gateway_url,
        httpx.AsyncClient(timeout=30) as client,
    ):
        operator = await open_gateway(make_settings(tmp_path, public_url=gateway_url))
        try:
            await operator.apps.add(
                AppIn(name="support", base_url=f"{dify}/v1", api_key=SecretStr("app-old"), mode="chat")
            )
            record, url, shown = await operator.endpoints.create_with_secrets("webhook", ["support"], {})
            load = Load(client, url, shown["secret"])
            senders = [asyncio.create_task(load.sender(n)) for n in range(CLIENTS)]
            try:
                await load.more()
                # 1. A new key: checked, answers move to it; while some Dify replicas don't know
                #    it yet (every other request refused), the old key answers instead.
                await operator.apps.add_key("support", "app-new", grace=3600)
                checked = gate.seen["app-new"]  # the add-key check
                await load.more(until=lambda: gate.seen["app-new"] > checked)  # the gateway moved to it
                gate.flaky.add("app-new")
                await load.more(until=lambda: gate.refusals["app-new"] > 2)  # the fallback was needed, and worked
                gate.flaky.clear()
                # 2. The old key is retired, then revoked in Dify.
                await operator.apps.retire_key("support")
                await load.more()
                gate.refused.add("app-old")
                await load.more()
                # 3. A new webhook secret: senders still signing with the old one are accepted,
                #    then they move to the new one, then the old one is retired.
                _, _, new_secret = await operator.endpoints.rotate_secret(record.id, grace=3600)
                assert new_secret is not None
                await load.more()
                await load.verified(new_secret, accepted=True)
                load.secret = new_secret
                await load.more()
                await operator.endpoints.retire_secret(record.id)
                await load.more()
                await load.verified(shown["secret"], accepted=False)  # the old secret is refused now
                await load.more()
            finally:
                load.stopped = True
                await asyncio.gather(*senders)
            assert load.failures == []
            assert load.succeeded >= 7 * STEP

        finally:
            await operator.aclose()
