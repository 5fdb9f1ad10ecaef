"""Credentials in job payloads (Discord interaction tokens, Slack response_urls, callback URLs)
are stored encrypted, bound to their job, on both backends; reads of jobs never show them."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from urllib.parse import urlencode

import pytest
import redis

from endpoints.webhook import plugin as webhook
from gateway.plugin import new_webhook_secret
from gateway.records.apps import AppIn
from gateway.security.sealed import unseal
from gateway.settings import Settings, sqlite_path
from tests.endpoints.slack.conftest import SIGNING_SECRET, signed
from tests.support import discord_interactions as discord
from tests.support.gateway import Running, admin_headers, make_settings, running_app
from tests.support.webhooks import signed_headers

pytestmark = pytest.mark.anyio

DISCORD_TOKEN = "aW50ZXJhY3Rpb246MTIzNDU2Nzg5MDpzZWNyZXQtaW50ZXJhY3Rpb24tdG9rZW4"
RESPONSE_URL = "https://hooks.slack.com/commands/T1/5555/zR8secretResponseUrlPart"
CALLBACK_URL = "http://127.0.0.1:9/hook?token=cb-secret-query-token"
DELIVERY_URL = "http://127.0.0.1:9/hook?token=delivery-secret-query-token"
SECRETS = [DISCORD_TOKEN, "zR8secretResponseUrlPart", "cb-secret-query-token", "delivery-secret-query-token"]


async def queue_jobs_with_credentials(running: Running) -> None:
    gateway = running.gateway
    await gateway.apps.add(
        AppIn.model_validate({"name": "a", "base_url": "http://dify.test/v1", "api_key": "app-k", "mode": "chat"})
    )
    key = discord.new_key()
    settings = {"application_id": discord.APPLICATION_ID, "public_key": discord.public_key_hex(key)}
    _, url = await gateway.endpoints.create("discord", ["a"], settings)
    body = discord.body_of(discord.command("ask", "why?", token=DISCORD_TOKEN))
    asked = await running.client.post(running.path(url), content=body, headers=discord.signed_headers(key, body))
    assert asked.status_code == 200, asked.text

    _, url = await gateway.endpoints.create("slack", ["a"], {"signing_secret": SIGNING_SECRET})
    form = {"command": "/ask", "text": "why?", "team_id": "T1", "channel_id": "C1", "user_id": "U1"}
    raw = urlencode({**form, "response_url": RESPONSE_URL}).encode()
    headers = {"content-type": "application/x-www-form-urlencoded", **signed(raw)}
    commanded = await running.client.post(running.path(url), content=raw, headers=headers)
    assert commanded.status_code == 200, commanded.text

    secret = new_webhook_secret()
    record, url = await gateway.endpoints.create("webhook", ["a"], {"secret": secret})
    raw = json.dumps({"query": "why?", "user": "u", "callback_url": CALLBACK_URL}).encode()
    called = await running.client.post(running.path(url), content=raw, headers=signed_headers(secret, raw))
    assert called.status_code == 202, called.text
    ctx = await gateway.contexts.build(record, webhook)
    await ctx.callbacks.send(DELIVERY_URL, "answer.completed", {"answer": "because"}, msg_id="msg_1")


def assert_no_credentials(stored: str) -> None:
    assert "enc:v1:" in stored  # the fields are there, sealed
    for secret in SECRETS:
        assert secret not in stored


async def assert_jobs_open_for_their_run(running: Running) -> None:
    jobs = {(j.kind, j.payload.get("handler")): j for j in await running.gateway.store.job_list()}
    box = running.gateway.box
    ask, command = jobs[("plugin", "ask")], jobs[("plugin", "command")]
    answer, callback = jobs[("plugin", "answer")], jobs[("callback", None)]
    assert unseal(box, ask.id, ask.payload["data"], {"token"})["token"] == DISCORD_TOKEN
    assert unseal(box, command.id, command.payload["data"], {"response_url"})["response_url"] == RESPONSE_URL
    assert unseal(box, answer.id, answer.payload["data"], {"callback_url"})["callback_url"] == CALLBACK_URL
    assert unseal(box, callback.id, callback.payload, {"url"})["url"] == DELIVERY_URL
    # Bound to the job: a sealed value copied into another job does not open.
    with pytest.raises(Exception, match="can't be decrypted"):
        unseal(box, command.id, ask.payload["data"], {"token"})
    listed = await running.client.get("/admin/api/jobs", headers=admin_headers())
    assert listed.status_code == 200 and len(listed.json()["jobs"]) == 4
    for secret in SECRETS:
        assert secret not in listed.text


def settings_for(tmp_path: Path, store: str | None = None) -> Settings:
    settings = make_settings(tmp_path, callback_allow_http=True, callback_allow_hosts=("127.0.0.1",))
    return settings if store is None else settings.with_changes(store=store)


async def test_sqlite_job_rows_hold_no_credentials(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    async with running_app(settings, run_workers=False) as running:
        await queue_jobs_with_credentials(running)
        await assert_jobs_open_for_their_run(running)
    path = sqlite_path(settings.store)
    assert path is not None
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT * FROM jobs").fetchall()
    assert len(rows) == 4
    assert_no_credentials(json.dumps(rows))


@pytest.mark.redis
async def test_redis_job_hashes_hold_no_credentials(tmp_path: Path, redis_db: str) -> None:
    async with running_app(settings_for(tmp_path, redis_db), run_workers=False) as running:
        await queue_jobs_with_credentials(running)
        await assert_jobs_open_for_their_run(running)
    client = redis.Redis.from_url(redis_db, decode_responses=True)
    try:
        stored = [client.hgetall(name) for name in client.scan_iter(match="*job:*") if client.type(name) == "hash"]
    finally:
        client.close()
    assert len(stored) == 4
    assert_no_credentials(json.dumps(stored))
