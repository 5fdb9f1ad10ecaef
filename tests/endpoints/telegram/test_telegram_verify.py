"""The Telegram webhook's front door: `X-Telegram-Bot-Api-Secret-Token` in constant time, 401 (never
500) for every bad or missing token, 401 for everything while no secret is configured, the
secret generated at creation, shown once and masked on every read."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from gateway.records.apps import AppIn
from gateway.testing.platforms.telegram import TOKEN, message_update
from gateway.testing.signing import telegram_request
from tests.support.gateway import Running, admin_headers, make_settings, running_app

pytestmark = pytest.mark.anyio

SECRET = "s3cr3t-Token_for-the-webhook"


@dataclass
class Front:
    running: Running
    path: str
    endpoint_id: str

    @property
    def client(self) -> httpx.AsyncClient:
        return self.running.client

    async def post(self, body: bytes, headers: dict[str, str] | httpx.Headers) -> httpx.Response:
        return await self.client.post(self.path, content=body, headers=headers)

    async def jobs(self) -> list[str]:
        listed = await self.client.get("/admin/api/jobs", headers=admin_headers())
        return [job["id"] for job in listed.json()["jobs"]]


async def _front(tmp_path: Path, settings: dict[str, object]) -> AsyncIterator[Front]:
    async with running_app(make_settings(tmp_path), run_workers=False) as running:
        await running.gateway.apps.add(
            AppIn.model_validate({"name": "a", "base_url": "http://dify.test/v1", "api_key": "app-k", "mode": "chat"})
        )
        record, url = await running.gateway.endpoints.create("telegram", ["a"], settings)
        yield Front(running, running.path(url), record.id)


@pytest.fixture
async def front(tmp_path: Path) -> AsyncIterator[Front]:
    async for running in _front(tmp_path, {"bot_token": TOKEN, "secret_token": SECRET}):
        yield running


def body() -> bytes:
    return json.dumps(message_update("hello")).encode()


def raw(headers: dict[str, str | bytes]) -> httpx.Headers:
    return httpx.Headers({name.encode(): v if isinstance(v, bytes) else v.encode() for name, v in headers.items()})


VECTORS: dict[str, dict[str, str] | httpx.Headers] = {
    "missing": {"content-type": "application/json"},
    "empty": {"x-telegram-bot-api-secret-token": ""},
    "wrong": {"x-telegram-bot-api-secret-token": "not-the-secret"},
    "truncated": {"x-telegram-bot-api-secret-token": SECRET[:-1]},
    "one extra char": {"x-telegram-bot-api-secret-token": SECRET + "x"},
    "case changed": {"x-telegram-bot-api-secret-token": SECRET.upper()},
    "padded": {"x-telegram-bot-api-secret-token": f" {SECRET} "},
    "huge": {"x-telegram-bot-api-secret-token": "a" * 65536},
    # Bytes that are not ASCII go on the wire as they are (httpx.Headers keeps raw bytes).
    "non-ascii": raw({"x-telegram-bot-api-secret-token": "é".encode() * 20}),
    "non-ascii suffix": raw({"x-telegram-bot-api-secret-token": SECRET.encode() + b"\xff"}),
    "another header": {"x-telegram-secret-token": SECRET},
}


@pytest.mark.parametrize("case", sorted(VECTORS))
async def test_bad_or_missing_secret_tokens_get_401_and_queue_nothing(front: Front, case: str) -> None:
    response = await front.post(body(), VECTORS[case])
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "unauthorized"
    assert SECRET not in response.text
    assert await front.jobs() == []


async def test_the_right_secret_is_acknowledged_after_the_job_is_queued(front: Front) -> None:
    signed = telegram_request(SECRET, message_update("hello"))
    response = await front.post(signed.body, signed.headers)
    assert response.status_code == 200
    assert len(await front.jobs()) == 1


async def test_stale_does_not_apply_a_replayed_update_is_one_job(front: Front) -> None:
    """Telegram signs nothing with time (no timestamp to be stale): a replay is caught by update_id."""
    signed = telegram_request(SECRET, message_update("hello", update_id=77))
    for _ in range(3):
        assert (await front.post(signed.body, signed.headers)).status_code == 200
    assert len(await front.jobs()) == 1


async def test_without_a_secret_everything_is_refused(tmp_path: Path) -> None:
    async for front in _front(tmp_path, {"bot_token": TOKEN, "secret_token": SECRET}):
        updated = await front.client.patch(
            f"/admin/api/endpoints/{front.endpoint_id}",
            json={"settings": {"secret_token": None}},
            headers=admin_headers(),
        )
        assert updated.status_code == 200, updated.text
        for headers in ({"x-telegram-bot-api-secret-token": SECRET}, {"x-telegram-bot-api-secret-token": ""}, {}):
            assert (await front.post(body(), headers)).status_code == 401
        assert await front.jobs() == []


async def test_the_secret_is_generated_shown_once_and_masked(tmp_path: Path) -> None:
    async with running_app(make_settings(tmp_path), run_workers=False) as running:
        await running.gateway.apps.add(
            AppIn.model_validate({"name": "a", "base_url": "http://dify.test/v1", "api_key": "app-k", "mode": "chat"})
        )
        created = await running.client.post(
            "/admin/api/endpoints",
            json={"plugin": "telegram", "apps": ["a"], "settings": {"bot_token": TOKEN}},
            headers=admin_headers(),
        )
        assert created.status_code == 201, created.text
        doc = created.json()
        generated = doc["secrets"]["secret_token"]
        assert len(generated) == 43 and generated not in json.dumps(doc["settings"])
        read = await running.client.get(f"/admin/api/endpoints/{doc['id']}", headers=admin_headers())
        assert generated not in read.text and TOKEN not in read.text
        signed = telegram_request(generated, message_update("hi"))
        path = running.path(doc["url"])
        assert (await running.client.post(path, content=signed.body, headers=signed.headers)).status_code == 200


async def test_a_verified_body_that_is_not_an_update_gets_400(front: Front) -> None:
    headers = {"x-telegram-bot-api-secret-token": SECRET, "content-type": "application/json"}
    for bad in (b"\xff\xfe not json", b"[1, 2]", b'{"message": {}}', b'{"update_id": "7"}'):
        response = await front.post(bad, headers)
        assert response.status_code == 400, (bad, response.text)
    assert await front.jobs() == []


async def test_updates_that_need_no_answer_are_acknowledged_without_a_job(front: Front) -> None:
    headers = {"x-telegram-bot-api-secret-token": SECRET, "content-type": "application/json"}
    bot = {"id": 42, "is_bot": True, "first_name": "Other", "username": "other_bot"}
    for update in (
        message_update("edited", edited=True),
        message_update("from a bot", sender=bot),
        message_update(None, new_chat_members=[bot]),
        {"update_id": 5, "channel_post": {"message_id": 1, "chat": {"id": -100, "type": "channel"}, "date": 1}},
    ):
        response = await front.post(json.dumps(update).encode(), headers)
        assert response.status_code == 200
    assert await front.jobs() == []


def test_bot_api_urls_keep_the_bot_token_out_of_logs() -> None:
    from gateway.logs import redact_url

    for path in ("/bot{}/sendMessage", "/file/bot{}/photos/file_1.jpg"):
        redacted = redact_url("https://api.telegram.org" + path.format(TOKEN))
        assert TOKEN.split(":")[1] not in redacted and TOKEN.split(":")[0] not in redacted
