"""The Lark endpoint's front door: the challenge, and 401 (never 500) for every bad request.

Through the real gateway app (HTTP edge, ingress, verifier), with events encrypted and signed as
Lark sends them (`gateway.testing.lark_event`); the vectors follow security.md §1-§3.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from endpoints.lark.settings import LarkSettings
from endpoints.lark.verify import decrypt, open_body
from gateway.clock import FakeClock
from gateway.records.apps import AppIn
from gateway.testing import lark_event, lark_message_event, lark_url_verification
from gateway.testing.platforms.lark import encrypt_event, lark_signature
from tests.support.gateway import admin_headers, make_settings, running_app

pytestmark = pytest.mark.anyio

NOW = 1_700_000_000
ENCRYPT_KEY = "kxOdHvf1fgZ3mFq1xvMu2dQ5Ki3Eb0aS"
TOKEN = "v3rificationT0ken"


def test_decryption_matches_lark_documented_example() -> None:
    # The example of Lark's "Encrypt Key" documentation: key "test key".
    assert decrypt("test key", "P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk=") == b"hello world"


def test_what_the_kit_encrypts_decrypts() -> None:
    assert decrypt(ENCRYPT_KEY, encrypt_event(ENCRYPT_KEY, "你好 world".encode())) == "你好 world".encode()


def test_an_encrypt_field_that_is_not_lark_base64_decrypts_to_nothing() -> None:
    good = encrypt_event(ENCRYPT_KEY, b"{}")
    assert decrypt(ENCRYPT_KEY, good) == decrypt(ENCRYPT_KEY, good.encode()) == b"{}"  # text or bytes
    for bad in ("é" + good, good + "!", good[:-4], "", good.encode() + b"\xff", b"%%%%"):
        assert decrypt(ENCRYPT_KEY, bad) is None, bad


@dataclass
class Front:
    client: httpx.AsyncClient
    path: str
    clock: FakeClock

    async def post(self, body: bytes, headers: dict[str, str] | httpx.Headers) -> httpx.Response:
        return await self.client.post(self.path, content=body, headers=headers)

    async def send(self, event: dict[str, Any], **options: Any) -> httpx.Response:
        signed = lark_event(ENCRYPT_KEY, event, timestamp=options.pop("timestamp", NOW), **options)
        return await self.post(signed.body, signed.headers)


async def _front(tmp_path: Path, **settings: Any) -> AsyncIterator[Front]:
    clock = FakeClock(NOW)
    async with running_app(make_settings(tmp_path), clock=clock, run_workers=False) as running:
        await running.gateway.apps.add(
            AppIn.model_validate({"name": "a", "base_url": "http://dify.test/v1", "api_key": "app-k", "mode": "chat"})
        )
        values = {"app_id": "cli_test123", "app_secret": "s", "encrypt_key": ENCRYPT_KEY, **settings}
        _, url = await running.gateway.endpoints.create("lark", ["a"], values)
        yield Front(running.client, running.path(url), clock)


@pytest.fixture
async def front(tmp_path: Path) -> AsyncIterator[Front]:
    async for running in _front(tmp_path, verification_token=TOKEN):
        yield running


def message() -> dict[str, Any]:
    return lark_message_event("hello", token=TOKEN)


async def test_a_good_event_is_acknowledged(front: Front) -> None:
    response = await front.send(message())
    assert response.status_code == 200 and response.json() == {}


@pytest.mark.parametrize("encrypted", [True, False])
async def test_the_challenge_is_answered_encrypted_or_not(front: Front, encrypted: bool) -> None:
    event = lark_url_verification(TOKEN, "ch-123")
    response = await front.send(event, encrypted=encrypted, signed=False)
    assert response.status_code == 200 and response.json() == {"challenge": "ch-123"}


@pytest.mark.parametrize("kind", ["message", "challenge"])
async def test_each_request_is_decrypted_once(front: Front, kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # The verifier decrypts to verify and hands the event on: the handler does not decrypt again.
    calls: list[str] = []

    def counted(encrypt_key: str, encrypted: str) -> bytes | None:
        calls.append(encrypted)
        return decrypt(encrypt_key, encrypted)

    monkeypatch.setattr(importlib.import_module("endpoints.lark.verify"), "decrypt", counted)
    if kind == "message":
        response = await front.send(message())
        assert response.status_code == 200 and response.json() == {}
    else:
        response = await front.send(lark_url_verification(TOKEN, "ch-9"), signed=False)
        assert response.json() == {"challenge": "ch-9"}
    assert len(calls) == 1


async def test_a_challenge_with_the_wrong_token_gets_401(front: Front) -> None:
    assert (await front.send(lark_url_verification("nope"), signed=False)).status_code == 401
    assert (await front.send(lark_url_verification("nope"), encrypted=False, signed=False)).status_code == 401


async def test_without_a_verification_token_only_encrypted_challenges_pass(tmp_path: Path) -> None:
    async for front in _front(tmp_path):
        event = lark_url_verification("anything", "c1")
        assert (await front.send(event, signed=False)).json() == {"challenge": "c1"}
        assert (await front.send(event, encrypted=False, signed=False)).status_code == 401
        assert (await front.send(message())).status_code == 200  # the token is checked only when set


def raw(headers: dict[str, str | bytes]) -> httpx.Headers:
    return httpx.Headers({name.encode(): v if isinstance(v, bytes) else v.encode() for name, v in headers.items()})


def _vectors() -> tuple[bytes, dict[str, dict[str, str] | httpx.Headers]]:
    signed = lark_event(ENCRYPT_KEY, message(), timestamp=NOW, nonce="n0nce")
    good = signed.headers
    sig, ts, nonce = good["x-lark-signature"], good["x-lark-request-timestamp"], good["x-lark-request-nonce"]
    base = {"content-type": "application/json"}
    other = lark_signature(ts, nonce, "another key", signed.body)

    def with_(**changes: str) -> dict[str, str]:
        headers = {**good, **{k.replace("_", "-"): v for k, v in changes.items()}}
        return {k: v for k, v in headers.items() if v != "<drop>"}

    return signed.body, {
        "no headers": base,
        "no signature": with_(x_lark_signature="<drop>"),
        "no timestamp": with_(x_lark_request_timestamp="<drop>"),
        "no nonce": with_(x_lark_request_nonce="<drop>"),
        "empty signature": with_(x_lark_signature=""),
        "another key": with_(x_lark_signature=other),
        "truncated": with_(x_lark_signature=sig[:-1]),
        "one extra char": with_(x_lark_signature=sig + "0"),
        "non-hex": with_(x_lark_signature="zz" + sig[2:]),
        "huge": with_(x_lark_signature="a" * 65536),
        "other nonce": with_(x_lark_request_nonce="n0nc3"),
        "huge nonce": with_(x_lark_request_nonce="n" * 4096),
        "stale": with_(x_lark_request_timestamp=str(NOW - 301)),
        "future": with_(x_lark_request_timestamp=str(NOW + 301)),
        "timestamp not a number": with_(x_lark_request_timestamp="1.7e9"),
        "non-ascii signature": raw({**good, "x-lark-signature": b"\xe9" * 64}),
        "non-ascii timestamp": raw({**good, "x-lark-request-timestamp": b"\xef\xbc\x91"}),
        "non-ascii nonce": raw({**good, "x-lark-request-nonce": "nönce".encode()}),
    }


@pytest.mark.parametrize(
    "case",
    [
        "no headers",
        "no signature",
        "no timestamp",
        "no nonce",
        "empty signature",
        "another key",
        "truncated",
        "one extra char",
        "non-hex",
        "huge",
        "other nonce",
        "huge nonce",
        "stale",
        "future",
        "timestamp not a number",
        "non-ascii signature",
        "non-ascii timestamp",
        "non-ascii nonce",
    ],
)
async def test_bad_signatures_get_401(front: Front, case: str) -> None:
    body, vectors = _vectors()
    response = await front.post(body, vectors[case])
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "unauthorized"


@pytest.mark.parametrize("offset", [-300, 300])
async def test_timestamps_at_the_edge_of_the_window_pass(front: Front, offset: int) -> None:
    assert (await front.send(message(), timestamp=NOW + offset)).status_code == 200


def _signed_body(body: bytes) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "x-lark-request-timestamp": str(NOW),
        "x-lark-request-nonce": "n",
        "x-lark-signature": lark_signature(str(NOW), "n", ENCRYPT_KEY, body),
    }


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\xff\xfe not json",
        b"[1, 2]",
        b'{"encrypt": 5}',
        b'{"encrypt": "not base64!!"}',
        b'{"encrypt": "aGVsbG8="}',  # base64, shorter than an IV and a block
        json.dumps({"encrypt": encrypt_event("another key", b'{"type":"x"}')}).encode(),  # bad padding (or junk)
        json.dumps({"encrypt": encrypt_event(ENCRYPT_KEY, b"not json")}).encode(),
        json.dumps({"encrypt": encrypt_event(ENCRYPT_KEY, "\u00e9t\u00e9".encode("latin-1"))}).encode(),
        json.dumps({"encrypt": encrypt_event(ENCRYPT_KEY, b"[1]")}).encode(),
        json.dumps({"encrypt": encrypt_event(ENCRYPT_KEY, json.dumps(message()).encode())})[:-20].encode(),  # cut
    ],
    ids=range(11),
)
async def test_bodies_that_do_not_decrypt_get_401_even_when_signed(front: Front, body: bytes) -> None:
    response = await front.post(body, _signed_body(body))
    assert response.status_code == 401, response.text


async def test_an_event_in_the_clear_gets_401_even_signed_with_the_right_token(front: Front) -> None:
    assert (await front.send(message(), encrypted=False)).status_code == 401


async def test_an_event_with_the_wrong_verification_token_gets_401(front: Front) -> None:
    assert (await front.send(lark_message_event("hi", token="wrong"))).status_code == 401


async def test_a_changed_body_gets_401(front: Front) -> None:
    signed = lark_event(ENCRYPT_KEY, message(), timestamp=NOW)
    other = lark_event(ENCRYPT_KEY, message(), timestamp=NOW)
    assert (await front.post(other.body, signed.headers)).status_code == 401


async def test_the_encrypt_key_is_required_and_masked(tmp_path: Path) -> None:
    async with running_app(make_settings(tmp_path), run_workers=False) as running:
        await running.gateway.apps.add(
            AppIn.model_validate({"name": "a", "base_url": "http://dify.test/v1", "api_key": "app-k", "mode": "chat"})
        )
        with pytest.raises(Exception, match="encrypt_key"):
            await running.gateway.endpoints.create("lark", ["a"], {"app_id": "cli_test123", "app_secret": "s"})
        values = {"app_id": "cli_test123", "app_secret": "topsecret", "encrypt_key": ENCRYPT_KEY, "domain": "lark"}
        endpoint, _ = await running.gateway.endpoints.create("lark", ["a"], values)
        read = await running.client.get(f"/admin/api/endpoints/{endpoint.id}", headers=admin_headers())
        shown = json.dumps(read.json())
        assert "topsecret" not in shown and ENCRYPT_KEY not in shown


def _opened_event(body: bytes) -> dict[str, Any] | str:
    opened = open_body(body, LarkSettings(app_id="cli_test123", app_secret=SecretStr("s"), encrypt_key=ENCRYPT_KEY))
    return opened if isinstance(opened, str) else opened.event


def test_a_body_as_lark_sends_it_is_opened_without_parsing_the_outer_json(monkeypatch: pytest.MonkeyPatch) -> None:
    # `{"encrypt":"<base64>"}` is recognised as it is; only the decrypted event goes through JSON.
    verify_module = importlib.import_module("endpoints.lark.verify")
    parsed: list[bytes] = []
    json_object = verify_module._json_object

    def counted(raw: bytes) -> dict[str, Any] | None:
        parsed.append(raw)
        return json_object(raw)  # type: ignore[no-any-return]

    monkeypatch.setattr(verify_module, "_json_object", counted)
    event = message()
    body = lark_event(ENCRYPT_KEY, event, timestamp=NOW).body
    assert _opened_event(body) == event
    assert len(parsed) == 1 and json.loads(parsed[0]) == event


def test_the_outer_body_means_what_json_says_it_means() -> None:
    event = message()
    values = {
        "<S>": encrypt_event(ENCRYPT_KEY, json.dumps(event).encode()),
        "<J>": encrypt_event("another key", b"{}"),
    }
    values["<E>"] = values["<S>"].replace("/", "\\/")  # JSON may escape "/": the same string

    def body(template: str) -> bytes:
        for marker, value in values.items():
            template = template.replace(marker, value)
        return template.encode()

    opened = [
        '{"encrypt":"<S>"}',
        ' \t\r\n{ "encrypt" :\n"<S>" }\r\n',
        '{"encrypt":"<E>"}',
        '{"schema":"2.0","encrypt":"<S>"}',
        '{"encrypt":"<J>","encrypt":"<S>"}',  # the last one counts
        '\ufeff{"encrypt":"<S>"}',  # a UTF-8 BOM, which json.loads takes
    ]
    refused = [
        '{"encrypt":"<S>","encrypt":"<J>"}',
        '{"encrypt":"<S>"} trailing',
        '{"encrypt":"<S>"}{}',
        '{"encrypt":"<S>"}\x0b',  # not JSON whitespace
        '[{"encrypt":"<S>"}]',
        '{"encrypt":"<S>\\u0000"}',
        '{"encrypt":"<S>',
        '{"encrypt":"<S>"',
    ]
    for template in opened:
        assert _opened_event(body(template)) == event, template
    for template in refused:
        assert isinstance(_opened_event(body(template)), str), template
