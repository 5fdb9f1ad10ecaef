"""Which updates the bot answers and what it is asked, from updates shaped as Telegram sends them."""

from __future__ import annotations

import pytest

from endpoints.telegram.updates import BotIdentity, TelegramMessage, parse_update
from gateway.testing.platforms.telegram import BOT_ID, BOT_USERNAME, group_chat, message_update, user

BOT = BotIdentity(BOT_ID, BOT_USERNAME)
ANA = user(1111, "Ana", "ana")
GROUP = group_chat()


def parsed(update: dict[str, object]) -> TelegramMessage:
    message = parse_update(update)
    assert isinstance(message, TelegramMessage), message
    return message


def test_every_private_message_is_answered_with_its_text() -> None:
    message = parsed(message_update("what is new?", sender=ANA))
    assert message.addressed(BOT) and message.private
    assert message.request(BOT).question == "what is new?" and message.request(BOT).command is None
    assert (message.dify_user, message.conversation_key) == ("telegram:1111", "telegram:1111")


@pytest.mark.parametrize(
    ("text", "command", "question"),
    [
        ("/ask what is new?", "ask", "what is new?"),
        (f"/ask@{BOT_USERNAME} what is new?", "ask", "what is new?"),
        (f"/ASK@{BOT_USERNAME.upper()} hi", "ask", "hi"),
        ("/reset", "reset", ""),
        ("/start", "start", ""),
        ("/weather now", "other", "now"),
        (f"@{BOT_USERNAME} what is new?", None, "what is new?"),
        (f"hey @{BOT_USERNAME}, what is new?", None, "hey , what is new?"),
        (f"🎉 @{BOT_USERNAME} party", None, "🎉  party"),  # offsets count UTF-16 units
    ],
)
def test_group_messages_for_the_bot(text: str, command: str | None, question: str) -> None:
    message = parsed(message_update(text, sender=ANA, chat=GROUP))
    assert message.addressed(BOT)
    request = message.request(BOT)
    assert (request.command, request.question) == (command, question)


@pytest.mark.parametrize(
    "text",
    ["just chatting", f"@{BOT_USERNAME}x is not me", "/ask@other_bot hi", "email me at a@dify_test_bot.com"],
)
def test_group_messages_for_others_are_not_answered(text: str) -> None:
    assert not parsed(message_update(text, sender=ANA, chat=GROUP)).addressed(BOT)


def test_a_reply_to_the_bot_and_a_text_mention_address_it() -> None:
    bot_message = {"message_id": 9, "from": user(BOT_ID, "Dify", BOT_USERNAME, bot=True), "chat": GROUP, "date": 1}
    assert parsed(message_update("and then?", sender=ANA, chat=GROUP, reply_to=bot_message)).addressed(BOT)
    other = {"message_id": 9, "from": user(5, "Ben", "ben"), "chat": GROUP, "date": 1}
    assert not parsed(message_update("and then?", sender=ANA, chat=GROUP, reply_to=other)).addressed(BOT)
    update = message_update("Dify help", sender=ANA, chat=GROUP)
    update["message"]["entities"] = [{"offset": 0, "length": 4, "type": "text_mention", "user": {"id": BOT_ID}}]
    assert parsed(update).addressed(BOT)


def test_forum_topics_are_kept_apart_and_the_topic_start_is_not_a_reply() -> None:
    forum = group_chat(forum=True)
    in_topic = parsed(message_update("hello", sender=ANA, chat=forum, thread_id=7))
    assert in_topic.thread_id == 7 and in_topic.reply_to_user is None and not in_topic.addressed(BOT)
    other_topic = parsed(message_update("/ask hi", sender=ANA, chat=forum, thread_id=8))
    assert in_topic.conversation_key != other_topic.conversation_key
    general = parsed(message_update("/ask hi", sender=ANA, chat=forum))
    assert general.thread_id is None


@pytest.mark.parametrize(
    ("update", "reason"),
    [
        (message_update("edited", edited=True), "not a new message"),
        (message_update("from a bot", sender=user(42, "Bot", "a_bot", bot=True)), "a bot's message"),
        (message_update(None, new_chat_members=[user(5, "Ben", "ben")]), "a service message"),
        (message_update(None, pinned_message={"message_id": 1}), "a service message"),
        (message_update("as a channel", sender_chat={"id": -100, "type": "channel"}), "sent on behalf of a chat"),
        ({"update_id": 1, "my_chat_member": {}}, "not a new message"),
        ({"update_id": "1", "message": {}}, "no update_id"),
        ({"update_id": 2, "message": {"chat": "x"}}, "no chat or message_id"),
    ],
)
def test_updates_that_are_not_answered(update: dict[str, object], reason: str) -> None:
    result = parse_update(update)
    assert isinstance(result, str) and result.startswith(reason), result


def test_a_photo_or_document_carries_its_caption_and_its_file() -> None:
    photo = parsed(message_update("what is this?", sender=ANA, photo="ph-1"))
    assert photo.text == "what is this?" and photo.file is not None
    assert (photo.file.file_id, photo.file.mime_type) == ("ph-1", "image/jpeg")  # the largest size
    document = {"file_id": "d-1", "file_unique_id": "u", "file_name": "q.pdf", "mime_type": "application/pdf"}
    doc = parsed(message_update(f"@{BOT_USERNAME} summarise", sender=ANA, chat=GROUP, document=document))
    assert doc.addressed(BOT) and doc.request(BOT).question == "summarise"
    assert doc.file is not None and doc.file.name == "q.pdf"


def test_the_payload_round_trips() -> None:
    message = parsed(message_update("what is this?", sender=ANA, photo="ph-1", chat=GROUP))
    assert TelegramMessage.from_payload(message.to_payload()) == message
