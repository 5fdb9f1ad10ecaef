"""The Interactions Endpoint's front door: PING, and 401 (never 500) for every bad signature.

Discord probes endpoints with invalid signatures and removes URLs that accept them
(platforms.md §2.1); the vectors follow security.md §1-§3. Signed with PyNaCl.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from nacl.signing import SigningKey

from endpoints.discord.settings import DiscordSettings
from gateway.clock import FakeClock
from gateway.host.runtime import Gateway
from gateway.records.apps import AppIn
from tests.support.discord_interactions import APPLICATION_ID, body_of, command, new_key, public_key_hex, signed_headers
from tests.support.gateway import admin_headers, make_settings, running_app

pytestmark = pytest.mark.anyio

NOW = 1_700_000_000


@dataclass
class Front:
    client: httpx.AsyncClient
    path: str
    key: SigningKey
    clock: FakeClock
    gateway: Gateway
    endpoint_id: str

    async def post(self, body: bytes, headers: dict[str, str] | httpx.Headers) -> httpx.Response:
        return await self.client.post(self.path, content=body, headers=headers)

    async def signed(self, payload: object, timestamp: int | str = NOW) -> httpx.Response:
        body = json.dumps(payload).encode()
        return await self.post(body, signed_headers(self.key, body, timestamp))


@pytest.fixture
async def front(tmp_path: Path) -> AsyncIterator[Front]:
    clock = FakeClock(NOW)
    key = new_key()
    async with running_app(make_settings(tmp_path), clock=clock, run_workers=False) as running:
        await running.gateway.apps.add(
            AppIn.model_validate({"name": "a", "base_url": "http://dify.test/v1", "api_key": "app-k", "mode": "chat"})
        )
        settings = {"application_id": APPLICATION_ID, "public_key": public_key_hex(key)}
        record, url = await running.gateway.endpoints.create("discord", ["a"], settings)
        yield Front(running.client, running.path(url), key, clock, running.gateway, record.id)


PING = {"type": 1, "id": "1", "application_id": APPLICATION_ID, "token": "t", "version": 1}


async def test_ping_answers_pong(front: Front) -> None:
    response = await front.signed(PING)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"type": 1}


async def test_ping_and_the_deferred_answer_are_compact_json(front: Front) -> None:
    assert (await front.signed(PING)).content == b'{"type":1}'
    response = await front.signed(command("ask", "hi"))
    assert response.status_code == 200 and response.content == b'{"type":5}'
    assert response.headers["content-type"] == "application/json"


def test_the_settings_decode_the_public_key_once_and_follow_a_changed_one() -> None:
    first, second = SigningKey.generate(), SigningKey.generate()
    settings = DiscordSettings.model_validate(
        {"application_id": APPLICATION_ID, "public_key": public_key_hex(first).upper()}
    )
    key = settings.verify_key
    assert settings.verify_key is key and key.hex == public_key_hex(first)
    message = b"1700000000{}"
    assert key.verify(first.sign(message).signature.hex(), message) is True
    assert settings.model_dump().keys() == DiscordSettings.model_fields.keys()  # the kept key is no setting
    copied = settings.model_copy(update={"public_key": public_key_hex(second)})
    assert copied.verify_key.hex == public_key_hex(second)
    assert copied.verify_key.verify(second.sign(message).signature.hex(), message) is True
    assert copied.verify_key.verify(first.sign(message).signature.hex(), message) is False
    assert settings.verify_key is key


async def test_a_new_public_key_is_used_from_the_next_interaction_on(front: Front) -> None:
    assert (await front.signed(PING)).status_code == 200
    new = SigningKey.generate()
    await front.gateway.endpoints.update(front.endpoint_id, settings={"public_key": public_key_hex(new)})
    assert (await front.signed(PING)).status_code == 401  # the old key's signature
    body = body_of(PING)
    response = await front.post(body, signed_headers(new, body, NOW))
    assert response.status_code == 200 and response.json() == {"type": 1}


async def test_the_raw_body_is_verified_not_a_reserialization(front: Front) -> None:
    body = b'{  "version":1, "type" :1,"id":"1"  }'
    response = await front.post(body, signed_headers(front.key, body, NOW))
    assert response.status_code == 200 and response.json() == {"type": 1}


def raw(headers: dict[str, str | bytes]) -> httpx.Headers:
    return httpx.Headers({name.encode(): v if isinstance(v, bytes) else v.encode() for name, v in headers.items()})


def _vectors(key: SigningKey) -> dict[str, dict[str, str] | httpx.Headers]:
    body = body_of(PING)
    good = signed_headers(key, body, NOW)
    sig, ts = good["x-signature-ed25519"], good["x-signature-timestamp"]
    other = signed_headers(SigningKey.generate(), body, NOW)["x-signature-ed25519"]
    base = {"content-type": "application/json"}
    return {
        "no headers": base,
        "no signature": {**base, "x-signature-timestamp": ts},
        "no timestamp": {**base, "x-signature-ed25519": sig},
        "empty signature": {**base, "x-signature-ed25519": "", "x-signature-timestamp": ts},
        "whitespace signature": {**base, "x-signature-ed25519": "  ", "x-signature-timestamp": ts},
        "another key": {**base, "x-signature-ed25519": other, "x-signature-timestamp": ts},
        "truncated": {**base, "x-signature-ed25519": sig[:-1], "x-signature-timestamp": ts},
        "short by a byte": {**base, "x-signature-ed25519": sig[:-2], "x-signature-timestamp": ts},
        "one extra char": {**base, "x-signature-ed25519": sig + "0", "x-signature-timestamp": ts},
        "one extra byte": {**base, "x-signature-ed25519": sig + "00", "x-signature-timestamp": ts},
        "non-hex": {**base, "x-signature-ed25519": "zz" + sig[2:], "x-signature-timestamp": ts},
        "uppercase hex": {**base, "x-signature-ed25519": sig.upper(), "x-signature-timestamp": ts},
        "huge": {**base, "x-signature-ed25519": "a" * 65536, "x-signature-timestamp": ts},
        # Bytes that are not ASCII go on the wire as they are (httpx.Headers keeps raw bytes).
        "non-ascii signature": raw({**base, "x-signature-ed25519": b"\xe9" * 128, "x-signature-timestamp": ts}),
        "non-ascii timestamp": raw({**base, "x-signature-ed25519": sig, "x-signature-timestamp": b"\xef\xbc\x91"}),
        "timestamp changed": {**base, "x-signature-ed25519": sig, "x-signature-timestamp": str(NOW + 1)},
    }


@pytest.mark.parametrize(
    "case",
    [
        "no headers",
        "no signature",
        "no timestamp",
        "empty signature",
        "whitespace signature",
        "another key",
        "truncated",
        "short by a byte",
        "one extra char",
        "one extra byte",
        "non-hex",
        "uppercase hex",
        "huge",
        "non-ascii signature",
        "non-ascii timestamp",
        "timestamp changed",
    ],
)
async def test_bad_signatures_get_401(front: Front, case: str) -> None:
    response = await front.post(body_of(PING), _vectors(front.key)[case])
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "unauthorized"


async def test_a_changed_body_gets_401(front: Front) -> None:
    headers = signed_headers(front.key, body_of(PING), NOW)
    response = await front.post(body_of({**PING, "type": 2}), headers)
    assert response.status_code == 401


@pytest.mark.parametrize("offset", [-300, 300])
async def test_timestamps_at_the_edge_of_the_window_are_accepted(front: Front, offset: int) -> None:
    assert (await front.signed(PING, NOW + offset)).status_code == 200


@pytest.mark.parametrize("timestamp", [NOW - 301, NOW + 301, "abc", "1.5", "", " 1700000000", "-1", "1e9", "9" * 30])
async def test_stale_future_or_malformed_timestamps_get_401(front: Front, timestamp: int | str) -> None:
    assert (await front.signed(PING, timestamp)).status_code == 401


async def test_a_signed_body_that_is_not_an_interaction_gets_400(front: Front) -> None:
    not_json = b"\xff\xfe not json"
    assert (await front.post(not_json, signed_headers(front.key, not_json, NOW))).status_code == 400
    assert (await front.signed([1, 2])).status_code == 400
    broken = command("ask", "hi")
    del broken["token"]
    assert (await front.signed(broken)).status_code == 400
    no_user = command("ask", "hi")
    del no_user["member"]
    assert (await front.signed(no_user)).status_code == 400


async def test_other_interactions_get_a_polite_answer(front: Front) -> None:
    component = await front.signed({**PING, "type": 3})
    assert component.status_code == 200
    assert component.json()["type"] == 4 and component.json()["data"]["flags"] == 64
    autocomplete = await front.signed({**PING, "type": 4})
    assert autocomplete.json() == {"type": 8, "data": {"choices": []}}
    unknown = (await front.signed(command("weather"))).json()
    assert unknown["type"] == 4 and "Unknown command" in unknown["data"]["content"]
    empty = (await front.signed(command("ask", "   "))).json()
    assert empty["type"] == 4 and "/ask question" in empty["data"]["content"]


async def test_settings_are_validated(front: Front) -> None:
    def create(settings: dict[str, object]) -> httpx.Request:
        body = {"plugin": "discord", "apps": ["a"], "settings": settings}
        return front.client.build_request("POST", "/admin/api/endpoints", json=body, headers=admin_headers())

    good = {"application_id": APPLICATION_ID, "public_key": public_key_hex(front.key)}
    bad_settings: list[dict[str, object]] = [
        {**good, "public_key": "zz" * 32},  # not hex
        {**good, "public_key": "ab" * 31},  # 31 bytes
        {**good, "public_key": "ab" * 33},  # 33 bytes
        {**good, "application_id": "abc"},
        {**good, "api_base_url": "ftp://discord.test"},
        {**good, "ask_command": "Ask Me"},
        {**good, "ask_command": "same", "reset_command": "same"},
        {**good, "edit_interval": 0},
        {**good, "token_deadline": 901},
    ]
    for settings in bad_settings:
        response = await front.client.send(create(settings))
        assert response.status_code in (400, 422), (settings, response.text)
    created = await front.client.send(create({**good, "public_key": public_key_hex(front.key).upper()}))
    assert created.status_code == 201, created.text
    assert created.json()["settings"]["public_key"] == public_key_hex(front.key)
