"""Zero-downtime rotation, on an injected clock: an app's two keys, an endpoint's two secrets."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from slack_sdk.signature import SignatureVerifier
from standardwebhooks.webhooks import Webhook

from endpoints.slack import plugin as slack
from endpoints.webhook import plugin as webhook
from gateway.clock import FakeClock
from gateway.delivery.callback_jobs import CALLBACK_JOB, CallbackDelivery
from gateway.delivery.callbacks import Outcome
from gateway.exceptions import BadRequest, UpstreamError
from gateway.host.runtime import Gateway
from gateway.plugin import Headers, Request
from gateway.records.apps import AppIn
from gateway.security.crypto import MASK
from gateway.security.signatures import parse_webhook_secret, standard_webhook_headers
from gateway.simulator.app import create_simulator_app
from gateway.simulator.config import SimulatorConfig
from tests.support.configfile import GatewayFactory, gateway_factory
from tests.support.gateway import run_job_now
from tests.support.keygate import KeyGate

pytestmark = pytest.mark.anyio

BASE = "http://dify.test/v1"
HOUR = 3600.0


@pytest.fixture(params=["sqlite", "redis"])
def fresh(request: pytest.FixtureRequest, tmp_path: Path) -> GatewayFactory:
    redis_url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    return gateway_factory(request.param, tmp_path, redis_url)


def dify(gate: KeyGate) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=gate))


def keys_gate() -> KeyGate:
    support = create_simulator_app(
        SimulatorConfig(api_keys=frozenset({"app-old", "app-new"}), first_token_latency=0, tokens_per_second=0)
    )
    other = create_simulator_app(
        SimulatorConfig(api_keys=frozenset({"app-other"}), app_name="Another bot", first_token_latency=0)
    )
    return KeyGate({"app-old": support, "app-new": support, "app-other": other})


async def ask(gw: Gateway, endpoint_id: str) -> str:
    record = await gw.endpoints.get(endpoint_id)
    ctx = await gw.contexts.build(record, webhook)
    return (await ctx.apps.ask("hi", user="u1")).text


async def test_an_app_key_rotates_without_a_failed_answer(fresh: GatewayFactory) -> None:
    gate, clock = keys_gate(), FakeClock()
    async with dify(gate) as http, fresh(clock=clock, http=http) as gw:
        await gw.apps.add(AppIn(name="support", base_url=BASE, api_key=_s("app-old"), mode="chat"))
        endpoint, _ = await gw.endpoints.create("webhook", ["support"], {})
        assert await ask(gw, endpoint.id) == "You said: hi"

        # The new key is checked with a real request first: a refused key or another app's changes nothing.
        with pytest.raises(UpstreamError):
            await gw.apps.add_key("support", "app-revoked", grace=HOUR)
        with pytest.raises(BadRequest, match="Another bot"):
            await gw.apps.add_key("support", "app-other", grace=HOUR)
        assert gw.apps.api_key(await gw.apps.get("support")) == "app-old"

        record = await gw.apps.add_key("support", "app-new", grace=HOUR)
        public = gw.apps.public(record)
        assert public["api_key"] == public["previous_key"] == MASK
        assert "app-old" not in json.dumps(await gw.store.doc_get("apps", "support"))
        gate.seen.clear()
        assert await ask(gw, endpoint.id) == "You said: hi"
        assert gate.seen["app-new"] > 0 and gate.seen["app-old"] == 0  # answers moved to the new key

        gate.refused.add("app-new")  # a Dify replica that does not know the new key yet
        assert await ask(gw, endpoint.id) == "You said: hi"  # answered with the old key on 401
        assert gate.seen["app-old"] > 0

        await gw.apps.retire_key("support")
        clock.advance(2)  # past the app cache of this process
        gate.seen.clear()
        with pytest.raises(UpstreamError):
            await ask(gw, endpoint.id)
        assert gate.seen["app-old"] == 0  # after retire-key the old key is never sent


async def test_the_old_key_stops_at_the_end_of_its_grace(fresh: GatewayFactory) -> None:
    gate, clock = keys_gate(), FakeClock()
    async with dify(gate) as http, fresh(clock=clock, http=http) as gw:
        await gw.apps.add(AppIn(name="support", base_url=BASE, api_key=_s("app-old"), mode="chat"))
        endpoint, _ = await gw.endpoints.create("webhook", ["support"], {})
        await gw.apps.add_key("support", "app-new", grace=60)
        gate.refused.add("app-new")
        assert await ask(gw, endpoint.id) == "You said: hi"
        clock.advance(61)
        gate.seen.clear()
        with pytest.raises(UpstreamError):
            await ask(gw, endpoint.id)
        assert gate.seen["app-old"] == 0


def webhook_request(secret: str, clock: FakeClock, body: bytes = b'{"query": "hi", "user": "u"}') -> Request:
    headers = standard_webhook_headers([parse_webhook_secret(secret)], "msg_1", int(clock.time()), body)
    return Request("POST", "/", "", Headers(list(headers.items())), body, "ep_1", "http://gw/e/t", clock.time())


class RecordingSender:
    def __init__(self) -> None:
        self.secrets: list[list[bytes]] = []

    async def send(self, url: str, body: bytes, *, msg_id: str, secrets: list[bytes]) -> Outcome:
        self.secrets.append(list(secrets))
        return Outcome("delivered", 200)


async def test_a_webhook_secret_rotates_verifying_either_and_signing_callbacks_with_both(fresh: GatewayFactory) -> None:
    clock = FakeClock()
    async with fresh(clock=clock) as gw:
        await gw.apps.add(AppIn(name="support", base_url=BASE, api_key=_s("app-old"), mode="chat"))
        record, _, shown = await gw.endpoints.create_with_secrets("webhook", ["support"], {})
        old = shown["secret"]
        record, setting, new = await gw.endpoints.rotate_secret(record.id, grace=HOUR)
        assert setting == "secret" and new is not None and new.startswith("whsec_") and new != old
        assert old not in json.dumps(await gw.store.doc_get("endpoints", record.id))
        assert list(gw.endpoints.public(record)["previous_secrets_expire_at"]) == ["secret"]
        assert old not in json.dumps(gw.endpoints.public(record))

        ctx = await gw.contexts.build(record, webhook)
        assert webhook.verifier is not None
        for secret in (old, new):
            assert (await webhook.verifier(webhook_request(secret, clock), ctx)).passed

        # Callbacks carry a signature by each secret: a receiver that knows either one accepts them.
        sender = RecordingSender()
        gw.job_handlers[CALLBACK_JOB] = CallbackDelivery(box=gw.box, endpoints=gw.endpoints, sender=sender)  # type: ignore[arg-type]
        job_id = await ctx.callbacks.send("https://example.com/hook", "answer.completed", {"x": 1}, msg_id="msg_a")
        assert (await run_job_now(gw, job_id)).state == "done"
        assert sender.secrets[-1] == [parse_webhook_secret(new), parse_webhook_secret(old)]
        now = datetime.datetime.now(tz=datetime.UTC)
        headers = standard_webhook_headers(sender.secrets[-1], "msg_a", int(now.timestamp()), b"{}")
        for secret in (old, new):
            Webhook(secret).verify(b"{}", headers)

        clock.advance(HOUR + 1)
        ctx = await gw.contexts.build(await gw.endpoints.get(record.id), webhook)
        assert not (await webhook.verifier(webhook_request(old, clock), ctx)).passed
        assert (await webhook.verifier(webhook_request(new, clock), ctx)).passed
        job_id = await ctx.callbacks.send("https://example.com/hook", "answer.completed", {"x": 2}, msg_id="msg_b")
        await run_job_now(gw, job_id)
        assert sender.secrets[-1] == [parse_webhook_secret(new)]


async def test_a_slack_signing_secret_rotates_and_retire_ends_the_old_one(fresh: GatewayFactory) -> None:
    clock = FakeClock()
    async with fresh(clock=clock) as gw:
        await gw.apps.add(AppIn(name="support", base_url=BASE, api_key=_s("app-old"), mode="chat"))
        record, _ = await gw.endpoints.create("slack", ["support"], {"signing_secret": "old-signing"})
        with pytest.raises(BadRequest, match="give the new value"):
            await gw.endpoints.rotate_secret(record.id, setting="signing_secret")
        record, _, shown = await gw.endpoints.rotate_secret(
            record.id, setting="signing_secret", value="new-signing", grace=HOUR
        )
        assert shown is None

        async def passes(secret: str) -> bool:
            ctx = await gw.contexts.build(await gw.endpoints.get(record.id), slack)
            body = b"token=x&command=%2Fask&text=hi"
            ts = str(int(clock.time()))
            signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body) or ""
            headers = Headers([("x-slack-request-timestamp", ts), ("x-slack-signature", signature)])
            assert slack.verifier is not None
            request = Request("POST", "/", "", headers, body, record.id, "http://gw/e/t", clock.time())
            return (await slack.verifier(request, ctx)).passed

        assert await passes("old-signing") and await passes("new-signing")
        await gw.endpoints.retire_secret(record.id)
        assert not await passes("old-signing") and await passes("new-signing")


def _s(value: str) -> Any:
    from pydantic import SecretStr

    return SecretStr(value)


async def test_a_secret_set_outright_ends_its_rotation(fresh: GatewayFactory) -> None:
    """Setting a secret with `update` (an operator replacing a leaked one, or `apply`) stops every
    value rotated out of it, as an app key given outright does; other settings' rotations stay."""
    clock = FakeClock()
    async with fresh(clock=clock) as gw:
        await gw.apps.add(AppIn(name="support", base_url=BASE, api_key=_s("app-old"), mode="chat"))
        record, _ = await gw.endpoints.create("slack", ["support"], {"signing_secret": "first"})
        await gw.endpoints.rotate_secret(record.id, setting="signing_secret", value="second", grace=HOUR)
        plugin = gw.registry.require("slack")
        assert gw.endpoints.secret_values(await gw.endpoints.get(record.id), plugin, "signing_secret") == (
            "second",
            "first",
        )
        await gw.endpoints.update(record.id, settings={"signing_secret": "third"})
        updated = await gw.endpoints.get(record.id)
        assert gw.endpoints.secret_values(updated, plugin, "signing_secret") == ("third",)
        assert updated.previous_secrets == ()
