"""What the `lark` plugin answers and how: p2p, groups and mentions, CardKit streaming with
increasing sequences, the patched-card fallback, long answers, escaping, conversations and reset.

A `FakeContext` (virtual clock, simulated Dify) whose HTTP goes to a `FakeLark`."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from endpoints.lark import plugin
from endpoints.lark.answer import CARDKIT_OFF_KEY
from endpoints.lark.settings import LarkSettings
from gateway.simulator.config import SimulatorConfig
from gateway.testing import FakeContext, FakeLark, lark_message_event
from tests.endpoints.lark.conftest import BOT, MENTION_BOT, TOKEN, LarkBench, settings, streaming

pytestmark = pytest.mark.anyio


def bench_with(fake: FakeLark, http: httpx.AsyncClient, *, apps: Any = None, **changes: Any) -> LarkBench:
    return LarkBench(FakeContext(plugin, settings(**changes), http=http, apps=apps), fake)


# -- what gets answered -----------------------------------------------------------------------------


async def test_a_p2p_message_is_answered_in_a_card(bench: LarkBench) -> None:
    event, runs = await bench.ask("hello")

    assert [r.result for r in runs] == [{"status": "answered", "messages": 1}]
    assert bench.replies(event) == ["You said: hello"]
    (reply,) = bench.fake.replies(event["event"]["message"]["message_id"])
    assert reply.card_id is not None and not reply.in_thread  # a p2p chat is one conversation
    (call,) = bench.ctx.apps.calls
    assert call.user == "lark:tenant1:ou_user1" and call.conversation_key == "lark:tenant1:oc_chat1"


async def test_a_group_mention_is_answered_in_the_thread_without_the_mention(bench: LarkBench) -> None:
    event, _ = await bench.ask("@_user_1 what is new?", chat_type="group", mentions=[MENTION_BOT])

    assert bench.replies(event) == ["You said: what is new?"]
    (reply,) = bench.fake.replies(event["event"]["message"]["message_id"])
    assert reply.in_thread
    message_id = event["event"]["message"]["message_id"]
    assert bench.ctx.apps.calls[0].conversation_key == f"lark:tenant1:oc_chat1:{message_id}"


async def test_other_mentions_are_kept_as_names(bench: LarkBench) -> None:
    mentions = [MENTION_BOT, ("@_user_2", "ou_ana", "Ana")]
    await bench.ask("@_user_1 ask @_user_2 please", chat_type="group", mentions=mentions)
    assert bench.ctx.apps.calls[0].query == "ask @Ana please"


async def test_a_group_message_without_the_bot_is_not_answered(bench: LarkBench) -> None:
    _, runs = await bench.ask("just chatting", chat_type="group")
    assert runs == []  # no mention at all: not even queued
    _, runs = await bench.ask("@_user_1 hi", chat_type="group", mentions=[("@_user_1", "ou_ana", "Ana")])
    assert [r.result for r in runs] == [{"status": "ignored", "reason": "the bot is not mentioned"}]
    # Now the bot's open_id is known: a mention of someone else is not even queued.
    _, runs = await bench.ask("@_user_1 hi", chat_type="group", mentions=[("@_user_1", "ou_ana", "Ana")])
    assert runs == [] and bench.fake.calls_to("reply") == []


async def test_the_bot_and_other_apps_are_never_answered(bench: LarkBench) -> None:
    _, runs = await bench.ask("I am an app", sender_type="app")
    assert runs == []
    _, runs = await bench.ask("echo of myself", sender=BOT)
    assert [r.result for r in runs] == [{"status": "ignored", "reason": "the bot's own message"}]
    assert bench.fake.calls_to("reply") == []


async def test_a_post_message_is_read_as_text(bench: LarkBench) -> None:
    content = {
        "title": "Question",
        "content": [
            [{"tag": "at", "user_id": "@_user_1", "user_name": "Dify"}, {"tag": "text", "text": " how do I"}],
            [{"tag": "a", "href": "https://example.com/doc", "text": "this doc"}, {"tag": "img", "image_key": "k"}],
        ],
    }
    await bench.ask("", message_type="post", content=content, chat_type="group", mentions=[MENTION_BOT])
    assert bench.ctx.apps.calls[0].query == "Question\n how do I\nthis doc (https://example.com/doc)"


async def test_other_message_types_and_events_are_acknowledged_and_ignored(bench: LarkBench) -> None:
    _, runs = await bench.ask("", message_type="image", content={"image_key": "img_1"})
    assert runs == []
    other = lark_message_event("x", token=TOKEN)
    other["header"]["event_type"] = "im.chat.member.bot.added_v1"
    assert (await bench.deliver(other)).status == 200 and bench.ctx.jobs.enqueued == []


async def test_a_redelivered_event_is_answered_once(bench: LarkBench) -> None:
    event = lark_message_event("once", token=TOKEN)
    for _ in range(3):
        assert (await bench.deliver(event)).status == 200
    assert len(bench.ctx.jobs.enqueued) == 1
    # The same message under another event id (Lark resends it so) is claimed by the first job.
    again = json.loads(json.dumps(event))
    again["header"]["event_id"] = "ev_other"
    await bench.deliver(again)
    runs = await bench.ctx.jobs.run_all()
    assert sorted(str(r.result["status"]) for r in runs if r.result) == ["answered", "duplicate"]
    assert len(bench.fake.calls_to("reply")) == 1


# -- streaming ------------------------------------------------------------------------------------


async def test_cardkit_streams_with_increasing_sequences_then_closes(fake: FakeLark, http: httpx.AsyncClient) -> None:
    answer = "Streaming " + " ".join(f"word{i}" for i in range(60))
    with streaming(answer) as apps:
        bench = bench_with(fake, http, apps=apps)
        event, _ = await bench.ask("go")

    (card,) = fake.cards.values()
    assert len(card.updates) >= 3  # the element was updated in place as Dify wrote
    assert all(b.startswith(a) for a, b in zip(card.updates, card.updates[1:], strict=False))  # grows
    assert card.sequences == sorted(set(card.sequences)) and card.sequences[0] > 0
    assert not card.streaming and card.content == answer  # closed at the end, showing the answer
    assert bench.replies(event) == [answer]
    assert fake.calls_to("patch") == []  # nothing reposted or patched


async def test_without_cardkit_a_card_message_is_patched_and_cardkit_is_rested(
    fake: FakeLark, http: httpx.AsyncClient
) -> None:
    fake.cardkit_refused = True
    answer = " ".join(f"token{i}" for i in range(60))
    bench = bench_with(fake, http)
    with streaming(answer) as apps:
        bench = bench_with(fake, http, apps=apps)
        event, runs = await bench.ask("go")

    assert runs[0].result == {"status": "answered", "messages": 1}
    (reply,) = fake.replies(event["event"]["message"]["message_id"])
    assert reply.card_id is None and len(reply.edits) >= 2 and bench.replies(event) == [answer]
    assert bench.ctx.storage.data.get(CARDKIT_OFF_KEY)
    created = len(fake.calls)
    await bench.ask("again")
    assert not [c for c in fake.calls[created:] if c.route == "create_card"]  # not tried for a while


async def test_cardkit_off_by_setting_patches_with_a_thinking_placeholder(
    fake: FakeLark, http: httpx.AsyncClient
) -> None:
    bench = bench_with(fake, http, cardkit=False)
    event, _ = await bench.ask("hi")
    (reply,) = fake.replies(event["event"]["message"]["message_id"])
    assert fake.shown(reply) == "You said: hi" and reply.edits == ["You said: hi"]
    assert json.loads(fake.calls_to("reply")[0].body["content"])["body"]["elements"][0]["content"] == "…thinking"


@pytest.mark.parametrize("cardkit", [True, False])
async def test_a_long_answer_continues_in_new_cards(fake: FakeLark, http: httpx.AsyncClient, cardkit: bool) -> None:
    paragraphs = [f"Paragraph {i}: " + "lorem ipsum dolor sit amet " * 8 for i in range(12)]
    answer = "\n\n".join(paragraphs)
    with streaming(answer, 2000) as apps:
        bench = bench_with(fake, http, apps=apps, card_limit=600, cardkit=cardkit)
        event, runs = await bench.ask("long")

    texts = bench.replies(event)
    assert len(texts) >= 3 and runs[0].result == {"status": "answered", "messages": len(texts)}
    assert all(len(t) <= 600 for t in texts)
    assert "".join(texts).replace("\n", "").replace(" ", "") == answer.replace("\n", "").replace(" ", "")


async def test_mentions_tags_and_links_in_answers_are_neutralised(fake: FakeLark, http: httpx.AsyncClient) -> None:
    answer = 'Hi <at id=all></at> and <at user_id="ou_x">x</at>, see [docs](https://evil.test) ![i](img_k) `<at>`'
    for cardkit in (True, False):
        bench = bench_with(fake, http, apps={"app": SimulatorConfig(answer=answer)}, cardkit=cardkit)
        event, _ = await bench.ask("q")
        (shown,) = bench.replies(event)
        assert "<at" not in shown.replace("`<at>`", "")
        assert "&lt;at id=all&gt;" not in shown and "&lt;at id=all>&lt;/at>" in shown
        assert "docs (https://evil.test)" in shown and "img_k" not in shown and "`<at>`" in shown


# -- conversations ----------------------------------------------------------------------------------


async def test_conversations_per_chat_and_thread_per_person_and_reset(bench: LarkBench) -> None:
    await bench.ask("one")
    await bench.ask("two")
    first, second = bench.ctx.apps.calls
    assert first.conversation_key == second.conversation_key and second.conversation_id is not None

    event, runs = await bench.ask("reset")
    assert runs[0].result == {"status": "reset"}
    assert bench.replies(event) == ["Conversation reset: your next message here starts a new conversation."]
    await bench.ask("three")
    assert bench.ctx.apps.calls[-1].conversation_id is None  # a new conversation

    # In a group thread, each person has their own conversation.
    root = "om_root1"
    for sender in ("ou_a", "ou_b", "ou_a"):
        await bench.ask("@_user_1 hi", chat_type="group", mentions=[MENTION_BOT], root_id=root, sender=sender)
    a1, b1, a2 = bench.ctx.apps.calls[-3:]
    assert a1.conversation_key == b1.conversation_key == a2.conversation_key == f"lark:tenant1:oc_chat1:{root}"
    assert a2.conversation_id is not None and b1.conversation_id is None


async def test_a_mention_without_a_question_asks_for_one(bench: LarkBench) -> None:
    event, runs = await bench.ask("@_user_1", chat_type="group", mentions=[MENTION_BOT])
    assert runs[0].result == {"status": "empty"} and bench.ctx.apps.calls == []
    assert bench.replies(event) == ["Ask me something: mention me with your question."]


# -- tokens, domains, platform errors ---------------------------------------------------------------


async def test_the_tenant_token_is_cached_and_refreshed_when_lark_refuses_it(bench: LarkBench) -> None:
    await bench.ask("one")
    await bench.ask("two")
    assert bench.fake.tokens_issued == 1
    stored = json.dumps(bench.ctx.storage.data)
    assert bench.fake.issued and not any(token in stored for token in bench.fake.issued)  # sealed, not in the clear

    bench.fake.expire_tokens()
    event, runs = await bench.ask("three")
    assert runs[0].result == {"status": "answered", "messages": 1} and bench.replies(event) == ["You said: three"]
    assert bench.fake.tokens_issued == 2


async def test_the_token_is_renewed_shortly_before_it_expires(bench: LarkBench) -> None:
    await bench.ask("one")
    bench.ctx.clock.advance(7200 - 300)  # type: ignore[attr-defined]
    await bench.ask("two")
    assert bench.fake.tokens_issued == 2


@pytest.mark.parametrize(("domain", "host"), [("feishu", "open.feishu.cn"), ("lark", "open.larksuite.com")])
async def test_both_domains(fake: FakeLark, http: httpx.AsyncClient, domain: str, host: str) -> None:
    ctx = FakeContext(plugin, {**settings(domain=domain), "api_base_url": None}, http=http)
    assert isinstance(ctx.settings, LarkSettings)
    event, _ = await LarkBench(ctx, fake).ask("hi")
    assert {c.host for c in fake.calls} == {host}
    assert all(c.path.startswith("/open-apis/") for c in fake.calls)
    assert fake.texts(event["event"]["message"]["message_id"]) == ["You said: hi"]


async def test_rate_limits_and_outages_are_waited_out(fake: FakeLark, http: httpx.AsyncClient) -> None:
    fake.rate_limit_once |= {"content", "reply"}
    fake.outages["create_card"] = ["html", "500"]
    with streaming("a b c d e f g h i j k l m n o p", 50) as apps:
        bench = bench_with(fake, http, apps=apps)
        event, runs = await bench.ask("hi")
    assert runs[0].result is not None and runs[0].result["status"] == "answered"
    assert bench.replies(event) == ["a b c d e f g h i j k l m n o p"]
    assert len(fake.calls_to("reply")) == 1 and len(fake.cards) == 1  # the card is sent once it may be


async def test_a_lark_outage_through_every_try_reruns_the_job_which_then_finishes(
    fake: FakeLark, http: httpx.AsyncClient
) -> None:
    bench = bench_with(fake, http)
    fake.outages["reply"] = ["500"] * 4
    event, runs = await bench.ask("hi")
    assert [r.state for r in runs][-1] == "done" and len(runs) == 2
    assert bench.replies(event) == ["You said: hi"]


async def test_a_refusal_dead_letters_the_job_and_says_why(fake: FakeLark, http: httpx.AsyncClient) -> None:
    bench = bench_with(fake, http, app_secret="wrong")
    _, runs = await bench.ask("hi")
    assert runs[-1].state == "dead" and "app secret invalid" in str(runs[-1].error)
    assert "wrong" not in str(runs[-1].error)


async def test_a_dify_failure_midway_ends_the_card_with_the_engines_note(bench: LarkBench) -> None:
    event, runs = await bench.ask("tell me [[fault:error-midstream]] a long story")
    assert runs[0].result is not None and runs[0].result["status"] == "failed"
    (shown,) = bench.replies(event)
    assert shown.startswith("You said:") and "⚠️ The answer was cut short" in shown
    assert not next(iter(bench.fake.cards.values())).streaming
