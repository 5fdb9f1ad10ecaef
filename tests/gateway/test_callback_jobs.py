"""The callback job: each attempt's outcome decides done, retry (on the schedule) or dead letter."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from endpoints.webhook import plugin as webhook
from gateway.delivery.callback_jobs import CALLBACK_JOB, CallbackDelivery
from gateway.delivery.callbacks import Outcome
from gateway.host.registry import PluginRegistry
from gateway.host.runtime import Gateway
from gateway.records.apps import AppIn
from gateway.security.signatures import parse_webhook_secret
from gateway.storage.base import Job
from tests.support.gateway import make_settings, run_job_now, running_app

pytestmark = pytest.mark.anyio


class FakeSender:
    """Stands in for CallbackSender: answers the outcomes it is given and keeps what it was sent."""

    def __init__(self, *outcomes: Outcome) -> None:
        self.outcomes = list(outcomes)
        self.sent: list[dict[str, Any]] = []

    async def send(self, url: str, body: bytes, *, msg_id: str, secrets: Sequence[bytes]) -> Outcome:
        self.sent.append({"url": url, "body": body, "msg_id": msg_id, "secrets": list(secrets)})
        return self.outcomes.pop(0)

    async def aclose(self) -> None:
        pass


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    settings = make_settings(tmp_path)
    async with running_app(settings, registry=PluginRegistry([webhook]), run_workers=False) as running:
        await running.gateway.apps.add(
            AppIn(name="a", base_url="http://dify.test/v1", api_key=SecretStr("k"), mode="chat")
        )
        yield running.gateway


async def queue_callback(gateway: Gateway) -> tuple[Job, str]:
    record, _, shown = await gateway.endpoints.create_with_secrets("webhook", ["a"], {})
    ctx = await gateway.contexts.build(record, webhook)
    job_id = await ctx.callbacks.send("https://example.com/hook", "answer.completed", {"x": 1}, msg_id="msg_1")
    again = await ctx.callbacks.send("https://example.com/hook", "answer.completed", {"x": 1}, msg_id="msg_1")
    assert again == job_id  # the same msg_id is one delivery
    job = await gateway.store.job_get(job_id)
    assert job is not None
    return job, shown["secret"]


def use_sender(gateway: Gateway, sender: FakeSender) -> None:
    """Deliver the gateway's callbacks through `sender`, without jitter."""
    delivery = CallbackDelivery(box=gateway.box, endpoints=gateway.endpoints, sender=sender, rand=lambda: 0.5)  # type: ignore[arg-type]
    gateway.job_handlers[CALLBACK_JOB] = delivery


async def test_delivered_is_done_and_signed_with_the_endpoint_secret(gateway: Gateway) -> None:
    sender = FakeSender(Outcome("delivered", 200))
    use_sender(gateway, sender)
    job, secret = await queue_callback(gateway)
    done = await run_job_now(gateway, job.id)
    assert done.state == "done"
    sent = sender.sent[0]
    assert sent["msg_id"] == "msg_1" and sent["url"] == "https://example.com/hook"
    assert sent["secrets"] == [parse_webhook_secret(secret)]  # the endpoint's own whsec_ key
    assert b'"type":"answer.completed"' in sent["body"]


async def test_retries_follow_the_schedule_and_honour_retry_after(gateway: Gateway) -> None:
    sender = FakeSender(Outcome("retry", 503, None, "HTTP 503"), Outcome("retry", 429, 120.0, "HTTP 429"))
    use_sender(gateway, sender)
    job, _ = await queue_callback(gateway)
    first = await run_job_now(gateway, job.id)
    assert first.state == "queued" and first.last_error == "HTTP 503"
    assert first.due_at == pytest.approx(gateway.clock.time() + 5.0, abs=1)  # the second slot: 5 s
    second = await run_job_now(gateway, job.id)
    assert second.due_at == pytest.approx(gateway.clock.time() + 300.0, abs=1)  # 5 min beats Retry-After 120


@pytest.mark.parametrize(
    "outcome", [Outcome("gone", 410, None, "HTTP 410 (gone)"), Outcome("refused", None, None, "address not allowed")]
)
async def test_gone_and_refused_are_dead_letters_at_once(gateway: Gateway, outcome: Outcome) -> None:
    use_sender(gateway, FakeSender(outcome))
    job, _ = await queue_callback(gateway)
    dead = await run_job_now(gateway, job.id)
    assert dead.state == "dead" and outcome.error in (dead.last_error or "")


async def test_an_exhausted_schedule_is_a_dead_letter_that_can_be_replayed(gateway: Gateway) -> None:
    use_sender(gateway, FakeSender(*[Outcome("retry", 500, None, "HTTP 500")] * 8))
    job, _ = await queue_callback(gateway)
    for _ in range(8):
        last = await run_job_now(gateway, job.id)
    assert last.state == "dead" and "after 8 attempts" in (last.last_error or "")
    assert await gateway.store.job_replay(job.id, gateway.clock.time())
    use_sender(gateway, FakeSender(Outcome("delivered", 204)))
    assert (await run_job_now(gateway, job.id)).state == "done"


async def test_deliveries_starting_together_read_their_endpoint_once_and_later_ones_read_afresh(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[str] = []  # the endpoint records read from the store
    doc_get = gateway.store.doc_get

    async def counted(collection: str, doc_id: str) -> Any:
        if collection == "endpoints":
            reads.append(doc_id)
        return await doc_get(collection, doc_id)

    monkeypatch.setattr(gateway.store, "doc_get", counted)
    sender = FakeSender(*[Outcome("delivered", 200)] * 6)
    use_sender(gateway, sender)
    record, _, shown = await gateway.endpoints.create_with_secrets("webhook", ["a"], {})
    ctx = await gateway.contexts.build(record, webhook)
    ids = [
        await ctx.callbacks.send("https://example.com/hook", "answer.completed", {"n": n}, msg_id=f"msg_{n}")
        for n in range(6)
    ]
    batch = await gateway.store.job_claim_many(gateway.workers.owner, gateway.clock.time(), 30, limit=5)
    await asyncio.gather(*(gateway.workers.run_job(job) for job in batch))  # a batch claimed together
    assert len(batch) == 5 and reads == [record.id]
    assert [s["secrets"] for s in sender.sent] == [[parse_webhook_secret(shown["secret"])]] * 5

    # The next delivery reads the endpoint again: a secret rotated meanwhile signs it, beside the old one.
    _, _, rotated = await gateway.endpoints.rotate_secret(record.id, grace=60)
    assert rotated is not None
    reads.clear()  # the rotation's own reads
    last = await run_job_now(gateway, ids[5])
    assert last.state == "done" and reads == [record.id]
    assert sender.sent[-1]["secrets"] == [parse_webhook_secret(rotated), parse_webhook_secret(shown["secret"])]
    assert {(await gateway.store.job_get(job_id) or last).state for job_id in ids} == {"done"}
