"""The openai plugin's parts in process: error mapping, settings, keys and limits (the test kit's
`FakeContext` on a fake clock; no servers)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from endpoints.openai import chat_completions, models, plugin, verify
from endpoints.openai.broadcast import broadcast_apps, broadcast_model
from endpoints.openai.errors import OpenAIError, from_exception
from endpoints.openai.keys import (
    LOCK,
    MAX_KEYS,
    KeyInfo,
    add_key,
    bearer_token,
    generate_initial_key,
    hash_key,
    revoke_key,
)
from endpoints.openai.limits import admit
from endpoints.openai.settings import OpenAISettings
from gateway.clock import FakeClock
from gateway.exceptions import (
    CircuitOpen,
    ConfigurationError,
    PayloadTooLarge,
    UpstreamTimeout,
    ValidationFailed,
)
from gateway.plugin import (
    BadRequest,
    Headers,
    NotFound,
    RateLimited,
    Request,
    Unauthorized,
    UpstreamError,
)
from gateway.simulator.config import SimulatorConfig
from gateway.testing import FakeContext
from tests.support.responses import json_body

pytestmark = pytest.mark.anyio


# -- errors -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "status", "type_", "code"),
    [
        (UpstreamTimeout("slow"), 504, "server_error", "timeout"),
        (
            UpstreamError("busy", upstream_status=429, upstream_code="too_many_requests"),
            429,
            "requests",
            "rate_limit_exceeded",
        ),
        (
            UpstreamError("quota", upstream_status=429, upstream_code="rate_limit_error"),
            429,
            "insufficient_quota",
            "insufficient_quota",
        ),
        (CircuitOpen("open"), 503, "server_error", "upstream_unavailable"),
        (UpstreamError("key rejected", upstream_status=401), 502, "server_error", "upstream_error"),
        (RateLimited("slow down", retry_after=2.5), 429, "requests", "rate_limit_exceeded"),
        (Unauthorized("who"), 401, "invalid_request_error", "invalid_api_key"),
        (NotFound("what"), 404, "invalid_request_error", "not_found"),
        (ValidationFailed("bad"), 400, "invalid_request_error", None),
        (BadRequest("bad"), 400, "invalid_request_error", None),
        (PayloadTooLarge("big"), 413, "invalid_request_error", None),
        (ConfigurationError("secret detail"), 500, "server_error", "internal_error"),
        (RuntimeError("secret detail"), 500, "server_error", "internal_error"),
    ],
)
def test_error_mapping(exc: Exception, status: int, type_: str, code: str | None) -> None:
    error = from_exception(exc)
    assert (error.status, error.type, error.code) == (status, type_, code)
    assert "secret detail" not in error.message and "key rejected" not in error.message
    response = error.response()
    assert response.status == status and response.media_type == "application/json"
    assert json_body(response)["error"] == {"message": error.message, "type": type_, "param": None, "code": code}


def test_retry_after_header_and_passthrough() -> None:
    error = from_exception(RateLimited("x", retry_after=2.5))
    assert ("retry-after", "3") in error.response().headers
    own = OpenAIError(400, "m", param="n")
    assert from_exception(own) is own and own.response().headers == []


# -- settings and key helpers ------------------------------------------------------------------------


def test_settings_store_only_hashes() -> None:
    key, stored = generate_initial_key()
    assert key.startswith("sk-dgw-") and stored == "sha256:" + hash_key(key)
    assert OpenAISettings(api_key=stored).api_key == stored
    assert OpenAISettings(api_key="my-own-long-client-key-123").api_key == "sha256:" + hash_key(
        "my-own-long-client-key-123"
    )
    assert OpenAISettings(api_key="").api_key is None and OpenAISettings().api_key is None
    for bad in ("app-0123456789abcdefghijkl", "short"):
        with pytest.raises(ValidationError):
            OpenAISettings(api_key=bad)
    assert OpenAISettings(broadcast_model="all-apps").broadcast_model == "all-apps"
    with pytest.raises(ValidationError):
        OpenAISettings(broadcast_model="All Apps")
    assert plugin.secret_fields() == frozenset()  # nothing secret is stored: the key is a hash


@pytest.mark.parametrize(
    ("header", "key"),
    [
        ("Bearer sk-1", "sk-1"),
        ("bearer  sk-1 ", "sk-1"),
        ("Bearer ", None),
        ("Basic sk-1", None),
        ("sk-1", None),
        (None, None),
    ],
)
def test_bearer_token(header: str | None, key: str | None) -> None:
    assert bearer_token(Headers([("authorization", header)] if header else [])) == key


# -- in a fake context --------------------------------------------------------------------------------


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def context(clock: FakeClock, **settings: Any) -> FakeContext:
    """The plugin's context for an endpoint with `settings`, bound to one chat app "support"."""
    return FakeContext(plugin, settings, apps={"support": SimulatorConfig()}, clock=clock)


def request(path: str, body: Any = None, key: str | None = None) -> Request:
    headers = [("authorization", f"Bearer {key}")] if key else []
    return Request(
        method="POST" if body is not None else "GET",
        path=path,
        query_string="",
        headers=Headers(headers),
        body=json.dumps(body).encode() if body is not None else b"",
        endpoint_id="ep_x",
        endpoint_url="http://gw.test/e/x",
        received_at=1_700_000_000.0,
    )


async def test_concurrency_limit_and_release(clock: FakeClock) -> None:
    ctx = context(clock, key_max_concurrent=1)
    info = KeyInfo((await add_key(ctx))["id"], "")
    slot = await admit(ctx, info, ctx.settings)
    with pytest.raises(OpenAIError) as caught:
        await admit(ctx, info, ctx.settings)
    assert caught.value.status == 429 and caught.value.retry_after == 1
    await slot.release()
    await slot.release()  # idempotent
    await (await admit(ctx, info, ctx.settings)).release()


async def test_a_slot_released_after_the_counter_expired_does_not_free_an_extra_one(clock: FakeClock) -> None:
    # The in-flight counter expires INFLIGHT_TTL after it was created; a request that started
    # before and ends after that must not drive it below zero (which would allow limit + 1).
    from endpoints.openai.limits import INFLIGHT_TTL

    ctx = context(clock, key_max_concurrent=1)
    info = KeyInfo((await add_key(ctx))["id"], "")
    long_running = await admit(ctx, info, ctx.settings)
    clock.advance(INFLIGHT_TTL + 1)
    await long_running.release()
    first = await admit(ctx, info, ctx.settings)
    with pytest.raises(OpenAIError) as caught:
        await admit(ctx, info, ctx.settings)
    assert caught.value.status == 429
    await first.release()


async def test_key_document_limits_and_lock(clock: FakeClock) -> None:
    ctx = context(clock)
    with pytest.raises(NotFound):
        await revoke_key(ctx, "key_nope")
    await ctx.storage.set("keys", json.dumps({"keys": [{"id": f"k{i}", "sha256": "0" * 64} for i in range(MAX_KEYS)]}))
    with pytest.raises(BadRequest):
        await add_key(ctx)
    await ctx.storage.set(LOCK, "someone-else", ttl=60)
    with pytest.raises(BadRequest, match="someone else"):
        await revoke_key(ctx, "k1")  # the fake clock makes the bounded wait instant
    with pytest.raises(BadRequest, match="key-id"):
        await plugin.actions["revoke-key"].handler(ctx, {})


async def test_handlers_recheck_the_key(clock: FakeClock) -> None:
    ctx = context(clock)
    # A key revoked after the verifier ran (or a handler reached without it) still gets a 401.
    response = await models(request("/v1/models"), ctx)
    assert response.status == 401 and json_body(response)["error"]["code"] == "invalid_api_key"
    added = await add_key(ctx)
    broken = await chat_completions(
        request("/v1/chat/completions", {"model": "support", "messages": "x"}, added["key"]), ctx
    )
    assert broken.status == 400 and json_body(broken)["error"]["param"] == "messages"


async def test_broadcast_without_usable_apps_is_an_unknown_model(clock: FakeClock) -> None:
    ctx = context(clock, broadcast_model="all", broadcast_apps=["gone"])
    added = await add_key(ctx)
    body = {"model": "all", "messages": [{"role": "user", "content": "hi"}]}
    response = await chat_completions(request("/v1/chat/completions", body, added["key"]), ctx)
    assert response.status == 404 and json_body(response)["error"]["code"] == "model_not_found"


def test_a_broadcast_asks_only_bound_apps_the_key_may_use() -> None:
    everyone, limited = KeyInfo("key_a", ""), KeyInfo("key_b", "", ("all", "coder"))
    settings = OpenAISettings(broadcast_model="all")
    assert broadcast_apps(settings, ("support", "coder"), everyone) == ["support", "coder"]
    assert broadcast_apps(settings, ("support", "coder"), limited) == ["coder"]
    assert broadcast_apps(settings, ("support",), limited) == []
    chosen = OpenAISettings(broadcast_model="all", broadcast_apps=["coder", "gone", "support"])
    assert broadcast_apps(chosen, ("support", "coder"), everyone) == ["coder", "support"]
    assert broadcast_apps(chosen, ("support", "coder"), KeyInfo("key_c", "", ("all", "support"))) == ["support"]


def test_a_broadcast_model_named_like_a_bound_app_is_off() -> None:
    assert broadcast_model(OpenAISettings(), ("support",)) is None
    assert broadcast_model(OpenAISettings(broadcast_model="all"), ("support",)) == "all"
    assert broadcast_model(OpenAISettings(broadcast_model="support"), ("support", "coder")) is None


async def test_a_shadowing_broadcast_model_is_refused_with_a_warning(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    ctx = context(clock, broadcast_model="support")
    added = await add_key(ctx)
    response = await models(request("/v1/models", key=added["key"]), ctx)
    assert [m["id"] for m in json_body(response)["data"]] == ["support"]
    assert "broadcast_model 'support' names a bound app" in caplog.text


async def test_the_key_document_is_read_once_per_ttl_and_the_handler_takes_the_verified_key(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dataclasses

    import endpoints.openai.keys as keys

    ctx = context(clock)
    added = await add_key(ctx, models="other")
    loads = 0
    real_load = keys._load

    async def counting_load(storage: Any) -> dict[str, Any]:
        nonlocal loads
        loads += 1
        return await real_load(storage)

    monkeypatch.setattr(keys, "_load", counting_load)
    listing = request("/v1/models", key=added["key"])
    verdict = await verify(listing, ctx)
    assert verdict.passed and verdict.verified == KeyInfo(added["id"], "", ("other",))
    # The handler gets the key as the ingress hands it on (`Request.verified`): no second check.
    response = await models(dataclasses.replace(listing, verified=verdict.verified), ctx)
    assert response.status == 200 and json_body(response)["data"] == [] and loads == 1
    body = {"model": "support", "messages": [{"role": "user", "content": "x"}]}
    chat = request("/v1/chat/completions", body, added["key"])
    assert (await verify(chat, ctx)).passed and loads == 1  # within KEYS_TTL: from the endpoint's memory
    response = await chat_completions(chat, ctx)  # reached without the verdict: checks the key itself
    assert response.status == 404 and loads == 1
    clock.advance(keys.KEYS_TTL)
    assert (await verify(chat, ctx)).passed and loads == 2
    assert not (await verify(request("/v1/models", key="sk-dgw-unknown"), ctx)).passed and loads == 2


async def test_the_verifier_still_sees_a_revocation_at_once(clock: FakeClock) -> None:
    ctx = context(clock)
    added = await add_key(ctx)
    listing = request("/v1/models", key=added["key"])
    assert (await verify(listing, ctx)).passed
    await revoke_key(ctx, added["id"])
    verdict = await verify(listing, ctx)
    assert not verdict.passed and verdict.response is not None and verdict.response.status == 401
    # What the verifier accepted before is forgotten: a handler reached anyway checks the store.
    assert (await models(listing, ctx)).status == 401


async def test_a_revocation_elsewhere_counts_within_the_keys_ttl(clock: FakeClock) -> None:
    import endpoints.openai.keys as keys

    initial, initial_hash = generate_initial_key()
    ctx = context(clock, api_key=initial_hash)
    added = await add_key(ctx)
    listing, first = request("/v1/models", key=added["key"]), request("/v1/models", key=initial)
    assert (await verify(listing, ctx)).passed and (await verify(first, ctx)).passed
    # Another process (a replica, the CLI) revokes both in the store: this endpoint's memory does not know yet.
    initial_id = keys.key_id(keys.setting_hash(initial_hash) or "")
    await ctx.storage.set(keys.DOC, json.dumps({"keys": [], "revoked": [initial_id]}))
    clock.advance(keys.KEYS_TTL / 2)
    assert (await verify(listing, ctx)).passed
    clock.advance(keys.KEYS_TTL / 2)
    for revoked in (listing, first):
        assert not (await verify(revoked, ctx)).passed
        assert (await models(revoked, ctx)).status == 401
