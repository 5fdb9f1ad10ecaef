"""The telegram plugin end to end: a real gateway (its workers and job queue), the Dify simulator and
the fake Bot API, updates shaped as Telegram sends them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.simulator.config import SimulatorConfig
from gateway.testing.platforms.telegram import BOT_ID, BOT_USERNAME, group_chat, message_update, user
from tests.endpoints.telegram.conftest import TelegramStack, telegram_stack
from tests.support.gateway import admin_headers

pytestmark = [pytest.mark.anyio, pytest.mark.live]

ANA = user(1111, "Ana", "ana")
BEN = user(2222, "Ben", "ben")
GROUP = group_chat(-1001234567890)


def words(count: int) -> str:
    return " ".join(f"word{i}" for i in range(count))


def chat_requests(stats: dict[str, Any]) -> list[dict[str, Any]]:
    return [r["body"] for r in stats["recent_requests"] if r["path"].endswith("/chat-messages")]


# -- private chats: drafts ---------------------------------------------------------------------


async def test_a_private_answer_streams_as_drafts_then_one_message(stack: TelegramStack) -> None:
    _, url = await stack.endpoint()
    answer = words(60)
    await stack.send(url, message_update(f"[[say:{answer}]]", sender=ANA))
    [job] = await stack.settled(1)

    assert job["state"] == "done"
    fake = stack.fake
    assert fake.chat(ANA["id"]) == [answer]
    assert len(fake.called("sendMessage")) == 1 and fake.called("editMessageText") == []
    drafts = fake.drafts
    assert len(drafts) >= 2, drafts
    assert len({d["draft_id"] for d in drafts}) == 1 and all(d["parse_mode"] == "HTML" for d in drafts)
    assert all(answer.startswith(d["shown"]) for d in drafts)
    methods = [c.method for c in fake.calls]
    assert methods.index("sendChatAction") < methods.index("sendMessageDraft")  # "typing…" until the first words


async def test_refused_drafts_fall_back_to_an_edited_message(stack: TelegramStack) -> None:
    _, url = await stack.endpoint()
    stack.fake.refuse_drafts = True
    answer = words(60)
    await stack.send(url, message_update(f"[[say:{answer}]]", sender=ANA))
    await stack.settled(1)

    assert stack.fake.chat(ANA["id"]) == [answer]
    assert stack.fake.called("editMessageText")


# -- groups: placeholder and edits ---------------------------------------------------------------


async def test_a_group_mention_is_answered_in_a_reply_edited_at_the_throttle(stack: TelegramStack) -> None:
    _, url = await stack.endpoint(group_edit_interval=0.5)
    answer = words(80)
    question = message_update(f"@{BOT_USERNAME} [[say:{answer}]]", sender=ANA, chat=GROUP, message_id=500)
    await stack.send(url, question)
    await stack.settled(1)

    fake = stack.fake
    [post] = fake.called("sendMessage")
    assert post.params["reply_parameters"]["message_id"] == 500
    assert post.params["text"] == "…"  # the placeholder
    edits = fake.called("editMessageText")
    assert len(edits) >= 2
    assert all(b.at - a.at >= 0.5 - 0.05 for a, b in zip(edits, edits[1:], strict=False))
    assert fake.chat(GROUP["id"]) == [answer]
    assert fake.drafts == []  # drafts are for private chats only


async def test_a_429_is_waited_out_for_its_retry_after(stack: TelegramStack) -> None:
    _, url = await stack.endpoint(group_edit_interval=0.5)
    stack.fake.rate_limits["editMessageText"] = [1.0]
    answer = words(40)
    await stack.send(url, message_update(f"/ask [[say:{answer}]]", sender=ANA, chat=GROUP))
    await stack.settled(1)

    fake = stack.fake
    [limited] = [c for c in fake.calls if c.status == 429]
    after = [c for c in fake.called("editMessageText") if c.at > limited.at]
    assert after and after[0].at - limited.at >= 1.0 - 0.05
    assert fake.chat(GROUP["id"]) == [answer]


async def test_who_is_answered_in_a_group(stack: TelegramStack) -> None:
    _, url = await stack.endpoint()
    await stack.send(url, message_update("/start", sender=ANA, chat=GROUP))  # a command: answered
    await stack.settled(1)
    [greeting] = stack.fake.chat(GROUP["id"])
    assert greeting.startswith("Hi!")
    bot_message = {"message_id": 101, "from": user(BOT_ID, "Dify", BOT_USERNAME, bot=True), "chat": GROUP, "date": 1}

    await stack.send(url, message_update("just chatting", sender=BEN, chat=GROUP))  # not addressed
    await stack.send(url, message_update("/ask@other_bot hi", sender=BEN, chat=GROUP))  # another bot's
    await stack.send(url, message_update("[[say:replied]]", sender=BEN, chat=GROUP, reply_to=bot_message))
    await stack.send(url, message_update("[[say:in a topic]]", sender=BEN, chat=group_chat(forum=True), thread_id=7))
    jobs = await stack.settled(2)

    assert len(jobs) == 2  # the bot is known after its first answer: the others were not queued
    texts = [m.text for m in stack.fake.messages.values()]
    assert "replied" in texts
    assert "in a topic" not in texts  # a topic message replies to the topic's start, not to the bot


async def test_a_forum_topic_is_answered_in_the_topic(stack: TelegramStack) -> None:
    _, url = await stack.endpoint()
    forum = group_chat(forum=True)
    await stack.send(url, message_update(f"@{BOT_USERNAME} [[say:topical]]", sender=ANA, chat=forum, thread_id=7))
    await stack.settled(1)

    [message] = stack.fake.messages.values()
    assert (message.text, message.thread_id) == ("topical", 7)
    actions = stack.fake.called("sendChatAction")
    assert actions and actions[0].params["message_thread_id"] == 7


# -- long answers and markup -------------------------------------------------------------------------


async def test_an_answer_over_4096_characters_continues_in_new_messages(tmp_path: Path) -> None:
    answer = "\n\n".join(f"Paragraph {i}: " + words(60) for i in range(20))
    assert len(answer) > 2 * 4096
    async with telegram_stack(tmp_path, SimulatorConfig(first_token_latency=0.05, tokens_per_second=600)) as stack:
        _, url = await stack.endpoint()
        await stack.send(url, message_update(f"[[say:{answer}]]", sender=ANA))
        await stack.settled(1)
        shown = stack.fake.chat(ANA["id"])
        drafted_pages = {d["draft_id"] for d in stack.fake.drafts}

    assert len(drafted_pages) >= 2  # each page its own draft
    assert len(shown) >= 3 and all(len(text) <= 4096 for text in shown)
    assert "\n\n".join(shown).split() == answer.split()


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(" ".join(f"user{i}@example.com" for i in range(600)), id="emails-whose-@-get-a-word-joiner"),
        pytest.param("Great! " + "\U0001f600" * 5000, id="emoji-two-utf16-units-each"),
    ],
)
async def test_pages_that_grow_when_rendered_still_fit_a_message(tmp_path: Path, answer: str) -> None:
    """Telegram counts the text it shows, in UTF-16 units: a page of Markdown under the limit can
    be over it once rendered (word joiners defusing @s, characters outside the BMP)."""
    async with telegram_stack(tmp_path, SimulatorConfig(first_token_latency=0.05, tokens_per_second=2000)) as stack:
        _, url = await stack.endpoint()
        await stack.send(url, message_update(f"[[say:{answer}]]", sender=BEN))
        [job] = await stack.settled(1)
        shown = stack.fake.chat(BEN["id"])
    assert job["state"] == "done" and job["last_error"] is None, job
    assert all(len(text.encode("utf-16-le")) // 2 <= 4096 for text in shown)
    assert "".join("".join(shown).replace("\u2060", "").split()) == "".join(answer.split())  # all of it, once


async def test_markup_in_an_answer_is_rendered_or_escaped_never_injected(stack: TelegramStack) -> None:
    _, url = await stack.endpoint()
    answer = "**real bold** and <b>fake bold</b> & <script>x</script> `a<b` [link](https://dify.ai) @everyone_here"
    await stack.send(url, message_update(f"[[say:{answer}]]", sender=ANA))
    await stack.settled(1)

    [message] = stack.fake.messages.values()
    assert message.parse_mode == "HTML"  # the fake parsed it as Telegram does: it would refuse broken markup
    assert "<b>real bold</b>" in message.raw and '<a href="https://dify.ai">link</a>' in message.raw
    assert "&lt;b&gt;fake bold&lt;/b&gt;" in message.raw and "<script>" not in message.raw
    assert "<b>fake bold</b> & <script>x</script>" in message.text  # shown as text
    assert "@\u2060everyone_here" in message.text  # a generated @mention notifies nobody


async def test_refused_markup_goes_again_as_plain_text(stack: TelegramStack) -> None:
    _, url = await stack.endpoint(drafts=False)
    stack.fake.refuse_markup = 1000
    await stack.send(url, message_update("[[say:**bold** & more]]", sender=ANA))
    [job] = await stack.settled(1)

    assert job["state"] == "done"
    [message] = stack.fake.messages.values()
    assert (message.text, message.parse_mode) == ("bold & more", None)


# -- conversations ----------------------------------------------------------------------------------


async def test_conversations_per_private_chat_per_person_in_groups_and_reset(stack: TelegramStack) -> None:
    _, url = await stack.endpoint()
    forum = group_chat(-1009, forum=True)
    sends = [
        message_update("one", sender=ANA),
        message_update("two", sender=ANA),  # same private chat: continues
        message_update("/ask three", sender=ANA, chat=GROUP),  # Ana in the group: her own
        message_update("/ask four", sender=BEN, chat=GROUP),  # Ben in the group: his own
        message_update("/ask five", sender=ANA, chat=forum, thread_id=7),  # a topic: its own
        message_update("/ask six", sender=ANA, chat=forum, thread_id=8),
        message_update("/reset", sender=ANA),
        message_update("seven", sender=ANA),  # after the reset: new
    ]
    for number, update in enumerate(sends, 1):
        await stack.send(url, update)
        await stack.settled(number)
    requests = chat_requests(await stack.sim_stats())

    by_query = {r["query"]: r for r in requests}
    assert not by_query["one"].get("conversation_id")
    assert by_query["two"].get("conversation_id")
    for query in ("three", "four", "five", "six", "seven"):
        assert not by_query[query].get("conversation_id"), query
    assert {by_query[q]["user"] for q in ("one", "three", "five")} == {"telegram:1111"}
    assert by_query["four"]["user"] == "telegram:2222"
    assert "Done" in stack.fake.chat(ANA["id"])[-2]


async def test_start_answers_the_greeting(stack: TelegramStack) -> None:
    _, url = await stack.endpoint(greeting="Welcome to **Support**!")
    await stack.send(url, message_update("/start", sender=ANA))
    await stack.settled(1)
    assert stack.fake.chat(ANA["id"]) == ["Welcome to Support!"]
    assert chat_requests(await stack.sim_stats()) == []


# -- files --------------------------------------------------------------------------------------------


async def test_a_photo_goes_to_an_app_that_takes_files(tmp_path: Path) -> None:
    config = SimulatorConfig(first_token_latency=0.05, tokens_per_second=40, file_upload=True)
    async with telegram_stack(tmp_path, config) as stack:
        _, url = await stack.endpoint()
        stack.fake.add_file("photo-1", "photos/file_1.jpg", b"\xff\xd8\xff" + b"0" * 500)
        await stack.send(url, message_update("what is in it?", sender=ANA, photo="photo-1"))
        await stack.settled(1)
        [request] = chat_requests(await stack.sim_stats())

        assert request["query"] == "what is in it?"
        [file] = request["files"]
        assert file["type"] == "image" and file["transfer_method"] == "local_file"
        assert stack.fake.chat(ANA["id"]) == ["You said: what is in it?"]


async def test_a_file_for_an_app_without_files_gets_a_polite_note(stack: TelegramStack) -> None:
    _, url = await stack.endpoint()
    stack.fake.add_file("doc-1", "documents/file_2.pdf", b"%PDF-1.4")
    document = {"file_id": "doc-1", "file_unique_id": "u", "file_name": "a.pdf", "mime_type": "application/pdf"}
    await stack.send(url, message_update("summarise", sender=ANA, document=document))
    await stack.settled(1)

    assert stack.fake.chat(ANA["id"]) == ["Sorry, this assistant can't read files. Please send your question as text."]
    assert chat_requests(await stack.sim_stats()) == []


async def test_a_new_bot_token_is_a_new_bot_at_once(stack: TelegramStack) -> None:
    """The bot's identity is kept to tell mentions apart; given another bot's token, the endpoint
    answers that bot's mentions from the next message, not a day later."""
    endpoint_id, url = await stack.endpoint()
    await stack.send(url, message_update(f"@{BOT_USERNAME} [[say:first]]", sender=ANA, chat=GROUP))
    await stack.settled(1)
    fake = stack.fake
    fake.token, fake.bot_id, fake.username = "987654321:" + "N" * 35, 987654321, "new_dify_bot"
    changed = await stack.client.patch(
        f"{stack.gateway}/admin/api/endpoints/{endpoint_id}",
        json={"settings": {"bot_token": fake.token}},
        headers=admin_headers(),
    )
    assert changed.status_code == 200, changed.text
    await stack.send(url, message_update(f"@{BOT_USERNAME} [[say:not me any more]]", sender=ANA, chat=GROUP))
    await stack.send(url, message_update("@new_dify_bot [[say:second]]", sender=BEN, chat=GROUP))
    await stack.settled(2)
    texts = [m.text for m in fake.messages.values()]
    assert "second" in texts and "not me any more" not in texts
