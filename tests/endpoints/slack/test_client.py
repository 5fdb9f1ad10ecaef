"""The Slack Web API client against the fake Slack on a real server: 5xx pages, plain-text errors and
timeouts are retried with backoff on the injected clock, then end as a clear job failure."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
from pydantic import SecretStr

from endpoints.slack.client import RETRIES, open_client, slack_failures
from endpoints.slack.settings import SlackSettings
from endpoints.slack.thread import SlackThread, answer_rules
from gateway.clock import FakeClock
from gateway.plugin import RetryJob
from tests.endpoints.slack.conftest import BOT_TOKEN
from tests.support.fake_slack import FakeSlack

pytestmark = [pytest.mark.anyio, pytest.mark.live]


def settings(fake: FakeSlack) -> SlackSettings:
    return SlackSettings(bot_token=SecretStr(BOT_TOKEN), api_base_url=fake.api_url)


CTX = SimpleNamespace(logger=logging.LoggerAdapter(logging.getLogger("test"), {}))


async def post(fake: FakeSlack, clock: FakeClock, *, timeout: float = 30.0) -> str:
    async with open_client(settings(fake), clock, timeout=timeout) as client, slack_failures(CTX):
        return await SlackThread(client, "C1", "1.1", rules=answer_rules(settings(fake))).post("Hello")


@pytest.mark.parametrize("fault", ["html", "text"])
async def test_a_5xx_that_is_not_json_is_retried_with_backoff(fake: FakeSlack, fault: str) -> None:
    fake.outages["chat.postMessage"] = [fault, fault]
    clock = FakeClock()
    ts = await post(fake, clock)
    assert fake.messages[ts].text == "Hello"
    assert [c.status for c in fake.calls_to("chat.postMessage")] == [502 if fault == "html" else 503] * 2 + [200]
    assert clock.monotonic() == 1.0 + 2.0  # backoff, waited on the gateway's clock


@pytest.mark.parametrize("fault", ["html", "text"])
async def test_a_lasting_outage_ends_as_a_clear_retryable_failure(fake: FakeSlack, fault: str) -> None:
    fake.outages["chat.postMessage"] = [fault] * (RETRIES + 1)
    with pytest.raises(RetryJob) as failure:
        await post(fake, FakeClock())
    status = 502 if fault == "html" else 503
    assert (
        str(failure.value) == f"Slack answered HTTP {status} with something other than its JSON ({RETRIES + 1} tries)"
    )
    assert len(fake.calls_to("chat.postMessage")) == RETRIES + 1
    assert fake.messages == {}


async def test_a_timeout_is_retried_then_a_clear_failure(fake: FakeSlack) -> None:
    fake.hang_seconds = 1.0
    fake.outages["chat.postMessage"] = ["hang"]
    clock = FakeClock()
    ts = await post(fake, clock, timeout=0.2)
    assert fake.messages[ts].text == "Hello"
    assert clock.monotonic() == 1.0

    fake.outages["chat.postMessage"] = ["hang"] * (RETRIES + 1)
    with pytest.raises(RetryJob) as failure:
        await post(fake, FakeClock(), timeout=0.2)
    assert str(failure.value) == f"Slack did not answer in time (TimeoutError, {RETRIES + 1} tries)"
