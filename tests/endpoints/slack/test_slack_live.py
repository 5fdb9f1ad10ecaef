"""The Slack plugin end to end: real uvicorn servers for the gateway, the Dify simulator and a
fake Slack Web API; every request signed with slack_sdk's `SignatureVerifier`."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.plugin import slack_signature
from gateway.simulator.config import SimulatorConfig
from tests.endpoints.slack.conftest import (
    SIGNING_SECRET,
    SlackStack,
    envelope,
    mention,
    message,
    signed,
    slack_stack,
)
from tests.support.gateway import admin_headers

pytestmark = [pytest.mark.anyio, pytest.mark.live]

QUESTION = "tell me a fairly long story please about the sea and the ships on it"
ANSWER = f"You said: {QUESTION}"


async def jobs(stack: SlackStack) -> list[dict[str, Any]]:
    listed = await stack.client.get(f"{stack.gateway}/admin/api/jobs", headers=admin_headers())
    found: list[dict[str, Any]] = listed.json()["jobs"]
    return found


async def wait_jobs_done(stack: SlackStack) -> list[dict[str, Any]]:
    for _ in range(300):
        found = await jobs(stack)
        if all(job["state"] in ("done", "dead") for job in found):
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"jobs still running: {found}")


async def dify_queries(stack: SlackStack) -> list[dict[str, Any]]:
    recent = (await stack.sim_stats())["recent_requests"]
    return [r["body"] for r in recent if r["path"].endswith("/chat-messages")]


# -- verification ------------------------------------------------------------------------------


async def test_url_verification_answers_the_challenge_once_verified(stack: SlackStack) -> None:
    url = await stack.endpoint()
    body = {
        "token": "x",
        "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
        "type": "url_verification",
    }
    answered = await stack.deliver(url, body)
    assert answered.status_code == 200
    assert answered.json() == {"challenge": body["challenge"]}
    unsigned = await stack.client.post(url, json=body)
    assert unsigned.status_code == 401


def _variants(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    good = signed(raw)
    now = int(time.time())
    sig = good["x-slack-signature"]
    return [
        ("missing both", {}),
        ("missing signature", {"x-slack-request-timestamp": good["x-slack-request-timestamp"]}),
        ("missing timestamp", {"x-slack-signature": sig}),
        ("empty signature", {**good, "x-slack-signature": ""}),
        ("scheme only", {**good, "x-slack-signature": "v0="}),
        ("truncated", {**good, "x-slack-signature": sig[:-1]}),
        ("one extra character", {**good, "x-slack-signature": sig + "0"}),
        ("uppercase hex", {**good, "x-slack-signature": "v0=" + sig[3:].upper()}),
        ("other prefix", {**good, "x-slack-signature": "v1=" + sig[3:]}),
        ("non-hex", {**good, "x-slack-signature": "v0=" + "zz" * 32}),
        ("non-ASCII signature", {**good, "x-slack-signature": b"v0=\xe9" + sig[4:].encode()}),
        ("non-ASCII timestamp", {**good, "x-slack-request-timestamp": b"17\xe9"}),
        ("huge signature", {**good, "x-slack-signature": "v0=" + "a" * 65536}),
        ("wrong secret", signed(raw, secret="another-signing-secret")),
        # Well past the 300 s window (the exact ±300/301 edges are unit-tested on a fake clock).
        ("stale", signed(raw, timestamp=now - 330)),
        ("future", signed(raw, timestamp=now + 330)),
        ("fractional timestamp", {**good, "x-slack-request-timestamp": "1.5"}),
        ("word timestamp", {**good, "x-slack-request-timestamp": "abc"}),
        ("signed timestamp", {**good, "x-slack-request-timestamp": "+" + good["x-slack-request-timestamp"]}),
        ("full-width digits", {**good, "x-slack-request-timestamp": "１７００".encode()}),
    ]


async def test_every_bad_signature_is_401_never_500(stack: SlackStack) -> None:
    url = await stack.endpoint()
    raw = json.dumps(envelope(mention("hi"))).encode()
    for name, headers in _variants(raw):
        response = await stack.client.post(url, content=raw, headers={"content-type": "application/json", **headers})
        assert response.status_code == 401, name
        assert response.json()["error"]["code"] == "unauthorized", name
    # The body changed after signing (one byte more) fails too.
    response = await stack.client.post(url, content=raw + b" ", headers=signed(raw))
    assert response.status_code == 401
    assert await jobs(stack) == []
    assert stack.fake.calls == []


async def test_without_a_signing_secret_everything_is_refused(stack: SlackStack) -> None:
    url = await stack.endpoint(signing_secret=None, bot_token=None)
    response = await stack.deliver(url, {"type": "url_verification", "challenge": "c"})
    assert response.status_code == 401


async def test_malformed_but_signed_bodies_are_400(stack: SlackStack) -> None:
    url = await stack.endpoint()
    for raw, media in ((b"{not json", "application/json"), (b"[1, 2]", "application/json"), (b"x=1", "text/plain")):
        headers = {"content-type": media, **signed(raw)}
        response = await stack.client.post(url, content=raw, headers=headers)
        assert response.status_code == 400, raw
    # slack_sdk can't sign bytes that aren't UTF-8 (it decodes the body first): sign them directly.
    bad_utf8 = b"command=/ask&text=\xff"
    ts = str(int(time.time()))
    headers = {
        "content-type": "application/x-www-form-urlencoded",
        "x-slack-request-timestamp": ts,
        "x-slack-signature": slack_signature(SIGNING_SECRET.encode(), ts, bad_utf8),
    }
    response = await stack.client.post(url, content=bad_utf8, headers=headers)
    assert response.status_code == 400


# -- answering ---------------------------------------------------------------------------------


async def test_a_mention_is_answered_in_its_thread_as_it_streams(stack: SlackStack) -> None:
    url = await stack.endpoint()
    event = mention(QUESTION)
    response = await stack.deliver(url, envelope(event))
    assert response.status_code == 200
    fake = stack.fake
    await fake.wait_for(lambda: fake.texts("C1", event["ts"]) == [ANSWER])
    posts = fake.calls_to("chat.postMessage")
    assert len(posts) == 1 and posts[0].params["text"] == "…thinking"
    assert posts[0].params["thread_ts"] == event["ts"]
    edits = [call.params["text"] for call in fake.calls_to("chat.update")]
    assert len(edits) >= 3, edits
    assert edits[-1] == ANSWER
    assert all(ANSWER.startswith(text) for text in edits)  # each edit shows more of the answer
    assert [len(text) for text in edits] == sorted(len(text) for text in edits)
    query = (await dify_queries(stack))[0]
    assert query["query"] == QUESTION and query["user"] == "slack:T1:U1"


@pytest.mark.parametrize("setting", [{}, {"query_input": "question"}], ids=["app-default", "setting"])
async def test_a_workflow_app_gets_the_question_in_its_own_input(tmp_path: Path, setting: dict[str, str]) -> None:
    # The workflow names its text input `question` (required), beside an optional `tone` text input.
    form = (("tone", "text-input", False), ("question", "paragraph", True))
    config = SimulatorConfig(mode="workflow", inputs=form, first_token_latency=0, tokens_per_second=0)
    async with slack_stack(tmp_path, config) as stack:
        url = await stack.endpoint(**setting)
        event = mention(QUESTION)
        assert (await stack.deliver(url, envelope(event))).status_code == 200
        await stack.fake.wait_for(lambda: stack.fake.texts("C1", event["ts"]) == [ANSWER])
        recent = (await stack.sim_stats())["recent_requests"]
    [run] = [r["body"] for r in recent if r["path"].endswith("/workflows/run")]
    assert run["inputs"] == {"question": QUESTION} and run["user"] == "slack:T1:U1"


async def test_native_streaming_uses_start_append_stop(stack: SlackStack) -> None:
    url = await stack.endpoint(native_streaming=True)
    event = mention(QUESTION)
    await stack.deliver(url, envelope(event))
    fake = stack.fake
    await fake.wait_for(lambda: len(fake.calls_to("chat.stopStream")) == 1)
    [streamed] = fake.thread("C1", event["ts"])
    assert streamed.streamed and not streamed.streaming
    assert streamed.text == ANSWER
    start = fake.calls_to("chat.startStream")[0].params
    assert start["recipient_user_id"] == "U1" and start["recipient_team_id"] == "T1"
    appends = fake.calls_to("chat.appendStream")
    assert len(appends) >= 2
    assert start["markdown_text"] + "".join(c.params["markdown_text"] for c in appends) == ANSWER
    assert fake.calls_to("chat.postMessage") == [] and fake.calls_to("chat.update") == []


async def test_native_streaming_falls_back_to_edits_when_refused(stack: SlackStack) -> None:
    url = await stack.endpoint(native_streaming=True)
    stack.fake.errors["chat.startStream"] = "not_allowed_token_type"
    event = mention("fall back please")
    await stack.deliver(url, envelope(event))
    await stack.fake.wait_for(lambda: stack.fake.texts("C1", event["ts"]) == ["You said: fall back please"])
    assert stack.fake.calls_to("chat.startStream")  # native streaming was tried first...
    assert stack.fake.calls_to("chat.appendStream") == []  # ...and, refused, the answer came by post and edits
    assert stack.fake.calls_to("chat.postMessage")


async def test_four_concurrent_deliveries_of_one_event_give_one_answer(stack: SlackStack) -> None:
    url = await stack.endpoint()
    body = envelope(mention("only once please"), event_id="EvSAME0001")
    responses = await asyncio.gather(*(stack.deliver(url, body, retry=n or None) for n in range(4)))
    assert [r.status_code for r in responses] == [200] * 4
    event = body["event"]
    await stack.fake.wait_for(lambda: stack.fake.texts("C1", event["ts"]) == ["You said: only once please"])
    late = await stack.deliver(url, body, retry=3)  # a late retry after the answer: acked, not answered
    assert late.status_code == 200
    assert len(await wait_jobs_done(stack)) == 1
    assert len(stack.fake.calls_to("chat.postMessage")) == 1
    assert (await stack.sim_stats())["generation_requests"] == 1


async def test_a_dm_is_answered(stack: SlackStack) -> None:
    url = await stack.endpoint()
    event = message("hello in private", channel="D1", channel_type="im")
    await stack.deliver(url, envelope(event))
    await stack.fake.wait_for(lambda: stack.fake.texts("D1", event["ts"]) == ["You said: hello in private"])


async def test_thread_replies_are_answered_only_in_threads_the_bot_is_in(stack: SlackStack) -> None:
    url = await stack.endpoint()
    first = mention("first question")
    await stack.deliver(url, envelope(first))
    fake = stack.fake
    await fake.wait_for(lambda: fake.texts("C1", first["ts"]) == ["You said: first question"])
    await wait_jobs_done(stack)

    stranger = message("not for you", channel="C1", channel_type="channel", thread_ts="1600000000.000001")
    assert (await stack.deliver(url, envelope(stranger))).status_code == 200
    assert len(await jobs(stack)) == 1  # nothing queued for a thread the bot is not in

    reply = message("a follow-up", channel="C1", channel_type="channel", thread_ts=first["ts"])
    await stack.deliver(url, envelope(reply))
    await fake.wait_for(lambda: fake.texts("C1", first["ts"]) == ["You said: first question", "You said: a follow-up"])
    first_query, follow_up = await dify_queries(stack)
    assert not first_query.get("conversation_id")
    assert follow_up["conversation_id"]  # the follow-up continued the thread's conversation
    assert fake.thread("C1", "1600000000.000001") == []


async def test_bot_messages_edits_and_own_messages_are_ignored(stack: SlackStack) -> None:
    url = await stack.endpoint()
    ignored = [
        message("from a bot", channel="D1", channel_type="im", bot_id="B2"),
        message("bot message", channel="D1", channel_type="im", subtype="bot_message"),
        message("my own words", channel="D1", channel_type="im", user="UBOT"),
        message("edited", channel="D1", channel_type="im", subtype="message_changed"),
        message("gone", channel="D1", channel_type="im", subtype="message_deleted"),
        {**mention("a bot mentioning me"), "bot_id": "B3"},
        message("top-level chatter", channel="C1", channel_type="channel"),
    ]
    for event in ignored:
        assert (await stack.deliver(url, envelope(event))).status_code == 200
    assert await jobs(stack) == []
    assert stack.fake.calls == []


async def test_reset_drops_the_thread_conversation(stack: SlackStack) -> None:
    url = await stack.endpoint()
    first = mention("remember me")
    thread = first["ts"]
    await stack.deliver(url, envelope(first))
    fake = stack.fake
    await fake.wait_for(lambda: fake.texts("C1", thread) == ["You said: remember me"])
    await wait_jobs_done(stack)  # the conversation is remembered once the answer's job ends
    await stack.deliver(url, envelope(mention("reset", thread_ts=thread)))
    await fake.wait_for(lambda: any(text.startswith("Conversation reset") for text in fake.texts("C1", thread)))
    await stack.deliver(url, envelope(mention("who am I", thread_ts=thread)))
    await fake.wait_for(lambda: "You said: who am I" in fake.texts("C1", thread))
    first_query, second_query = await dify_queries(stack)
    assert not first_query.get("conversation_id")
    assert not second_query.get("conversation_id")  # a new conversation after the reset


async def test_reset_in_a_thread_forgets_only_the_speakers_conversation(stack: SlackStack) -> None:
    url = await stack.endpoint()
    first = mention("remember me")
    thread = first["ts"]
    fake = stack.fake
    await stack.deliver(url, envelope(first))
    await fake.wait_for(lambda: "You said: remember me" in fake.texts("C1", thread))
    await wait_jobs_done(stack)
    await stack.deliver(url, envelope({**mention("me too", thread_ts=thread), "user": "U2"}))
    await fake.wait_for(lambda: "You said: me too" in fake.texts("C1", thread))
    await wait_jobs_done(stack)
    await stack.deliver(url, envelope(mention("reset", thread_ts=thread)))  # U1 resets
    await fake.wait_for(lambda: any(text.startswith("Conversation reset") for text in fake.texts("C1", thread)))
    await wait_jobs_done(stack)
    await stack.deliver(url, envelope({**mention("still there?", thread_ts=thread), "user": "U2"}))
    await fake.wait_for(lambda: "You said: still there?" in fake.texts("C1", thread))
    queries = await dify_queries(stack)
    second_user = [q for q in queries if q["user"] == "slack:T1:U2"]
    assert len(second_user) == 2
    assert second_user[1].get("conversation_id")  # U2's conversation survived U1's reset


async def test_slash_reset_forgets_only_the_speakers_conversation(stack: SlackStack) -> None:
    url = await stack.endpoint()
    fake = stack.fake
    await stack.command(url, "hello", fake.response_url("a1"))
    await stack.command(url, "hello", fake.response_url("b1"), user_id="U2")
    await fake.wait_for(lambda: all(fake.responses.get(r) for r in ("a1", "b1")))
    await wait_jobs_done(stack)
    reset = await stack.command(url, "reset", fake.response_url("a2"))  # U1 resets
    assert reset.json()["text"].startswith("Conversation reset")
    await stack.command(url, "again", fake.response_url("b2"), user_id="U2")
    await stack.command(url, "again", fake.response_url("a3"))
    await wait_jobs_done(stack)
    queries = [q for q in await dify_queries(stack) if q["query"] == "again"]
    by_user = {q["user"]: q for q in queries}
    assert by_user["slack:T1:U2"].get("conversation_id")  # U2 continues
    assert not by_user["slack:T1:U1"].get("conversation_id")  # U1 starts over


async def test_dify_failures_reach_slack_as_readable_messages(stack: SlackStack) -> None:
    url = await stack.endpoint()
    refused = mention("[[fault:400]] hello")
    midway = mention("[[fault:error-midstream]] one two three four five six")
    await stack.deliver(url, envelope(refused))
    await stack.deliver(url, envelope(midway))
    fake = stack.fake
    await fake.wait_for(lambda: "Sorry" in " ".join(fake.texts("C1", refused["ts"])))
    [text] = fake.texts("C1", refused["ts"])
    assert "app_unavailable" in text and "Traceback" not in text and len(text) < 200
    await fake.wait_for(lambda: "cut short" in " ".join(fake.texts("C1", midway["ts"])))
    [partial] = fake.texts("C1", midway["ts"])
    assert partial.startswith("You said:")


async def test_a_slack_429_is_retried_after_retry_after(stack: SlackStack) -> None:
    url = await stack.endpoint()
    stack.fake.rate_limit_once.add("chat.postMessage")
    event = mention("patience")
    await stack.deliver(url, envelope(event))
    await stack.fake.wait_for(lambda: stack.fake.texts("C1", event["ts"]) == ["You said: patience"])
    limited, accepted = stack.fake.calls_to("chat.postMessage")
    assert (limited.status, accepted.status) == (429, 200)
    assert accepted.at - limited.at >= 0.9  # Retry-After: 1 was honoured


async def test_long_answers_continue_in_new_messages(tmp_path: Path) -> None:
    paragraphs = [" ".join(f"word{p}x{i}" for i in range(160)) for p in range(12)]
    long_answer = "\n\n".join(paragraphs)
    assert len(long_answer) > 3 * 3000
    config = SimulatorConfig(answer=long_answer, first_token_latency=0.01, tokens_per_second=0)
    async with slack_stack(tmp_path, config) as stack:
        url = await stack.endpoint()
        event = mention("tell me everything")
        await stack.deliver(url, envelope(event))
        fake = stack.fake
        await wait_jobs_done(stack)
        texts = fake.texts("C1", event["ts"])
        assert len(texts) >= 4
        assert all(len(text) <= 3000 for text in texts)
        assert " ".join(texts).split() == long_answer.split()


# -- slash commands, interactivity, setup -------------------------------------------------------


async def test_slash_command_acks_at_once_then_answers_through_response_url(stack: SlackStack) -> None:
    url = await stack.endpoint()
    response = await stack.command(url, QUESTION, stack.fake.response_url("r1"))
    assert response.status_code == 200
    ack = response.json()
    assert ack["response_type"] == "ephemeral" and "…thinking" in ack["text"] and QUESTION in ack["text"]
    fake = stack.fake
    await fake.wait_for(lambda: any(body["text"] == ANSWER for body in fake.responses.get("r1", [])))
    bodies = fake.responses["r1"]
    assert len(bodies) <= 5
    assert all(body["replace_original"] is True and body["response_type"] == "ephemeral" for body in bodies)
    assert bodies[-1]["text"] == ANSWER
    assert (await dify_queries(stack))[0]["user"] == "slack:T1:U1"


async def test_slash_command_usage_reset_and_foreign_response_urls(stack: SlackStack) -> None:
    url = await stack.endpoint()
    empty = await stack.command(url, "  ", stack.fake.response_url("r2"))
    assert empty.status_code == 200 and "/ask" in empty.json()["text"]
    reset = await stack.command(url, "reset", stack.fake.response_url("r3"))
    assert reset.json()["text"].startswith("Conversation reset")
    foreign = await stack.command(url, "hi", "http://169.254.169.254/latest/meta-data")
    assert foreign.status_code == 400
    assert await jobs(stack) == []


async def test_interactivity_and_ssl_check_are_acknowledged(stack: SlackStack) -> None:
    url = await stack.endpoint()
    raw = b"payload=" + httpx.QueryParams({"p": json.dumps({"type": "block_actions"})}).get("p", "").encode()
    form = {"content-type": "application/x-www-form-urlencoded"}
    interactive = await stack.client.post(f"{url}/interactivity", content=raw, headers={**form, **signed(raw)})
    assert interactive.status_code == 200
    probe = await stack.client.post(url, content=b"ssl_check=1&token=abc", headers=form)
    assert probe.status_code == 200
    events = await stack.deliver(url.rstrip("/") + "/events", {"type": "url_verification", "challenge": "sub"})
    assert events.json() == {"challenge": "sub"}


async def test_manifest_action_wires_the_endpoint_url(stack: SlackStack) -> None:
    url = await stack.endpoint(slash_command="/dify", native_streaming=True)
    listed = (await stack.client.get(f"{stack.gateway}/admin/api/endpoints", headers=admin_headers())).json()
    endpoint_id = next(e["id"] for e in listed["endpoints"] if e["url"] == url)
    ran = await stack.client.post(
        f"{stack.gateway}/admin/api/endpoints/{endpoint_id}/actions/manifest",
        json={"args": {}},
        headers=admin_headers(),
    )
    assert ran.status_code == 200, ran.text
    manifest = json.loads(ran.json()["result"])
    assert manifest["settings"]["event_subscriptions"]["request_url"] == url
    assert manifest["settings"]["interactivity"]["request_url"] == url
    assert manifest["features"]["slash_commands"][0] == {
        "command": "/dify",
        "url": url,
        "description": "Ask Dify",
        "usage_hint": "your question (or: reset)",
        "should_escape": False,
    }
    assert "assistant:write" in manifest["oauth_config"]["scopes"]["bot"]
    assert SIGNING_SECRET not in ran.text
    too_long = await stack.client.post(
        f"{stack.gateway}/admin/api/endpoints/{endpoint_id}/actions/manifest",
        json={"args": {"name": "x" * 36}},
        headers=admin_headers(),
    )
    assert too_long.status_code == 400
