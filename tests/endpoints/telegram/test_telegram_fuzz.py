"""Property tests of what the Telegram plugin reads from outside: any JSON update parses to a message
or a reason (never an exception), a parsed message survives its job payload, and any Markdown an
app answers renders to HTML that Telegram parses (the fake's parser), with only its known tags."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings, strategies as st

from endpoints.telegram.render import to_html, to_plain
from endpoints.telegram.updates import BotIdentity, TelegramMessage, parse_update
from gateway.testing.platforms.telegram import parse_html

BOT = BotIdentity(42, "MyBot")
FUZZ = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
)
anything = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
numbers = st.integers(min_value=-(2**64), max_value=2**64) | anything
person = anything | st.fixed_dictionaries({"id": numbers}, optional={"is_bot": anything})
entity = st.fixed_dictionaries(
    {"type": st.sampled_from(["mention", "text_mention", "bot_command", "bold"]) | anything, "offset": numbers},
    optional={"length": numbers, "user": person},
)
message = st.fixed_dictionaries(
    {
        "message_id": numbers,
        "chat": anything
        | st.fixed_dictionaries({"id": numbers}, optional={"type": st.sampled_from(["private", "group"]) | anything}),
        "from": person,
    },
    optional={
        "text": st.text() | anything,
        "caption": st.text() | anything,
        "entities": st.lists(entity | anything, max_size=4) | anything,
        "caption_entities": st.lists(entity, max_size=3) | anything,
        "photo": anything | st.lists(st.fixed_dictionaries({"file_id": st.text(max_size=5)}), max_size=2),
        "document": anything | st.fixed_dictionaries({"file_id": st.text(max_size=5)}, optional={"file_size": numbers}),
        "reply_to_message": anything | st.fixed_dictionaries({"from": person}),
        "is_topic_message": anything,
        "message_thread_id": numbers,
        "sender_chat": anything,
    },
)
updates = st.fixed_dictionaries({"update_id": numbers}, optional={"message": message | anything})


@FUZZ
@given(updates)
def test_any_update_parses_to_a_message_or_a_reason(update: dict[str, Any]) -> None:
    parsed = parse_update(update)
    if isinstance(parsed, str):
        return
    parsed.addressed(BOT)
    parsed.request(BOT)
    assert TelegramMessage.from_payload(json.loads(json.dumps(parsed.to_payload()))) == parsed


MARKDOWN_PIECES = [
    *"ab <>&\"'*_`~[]()!#-\n>1.@:/\\|",
    "javascript:",
    "http://x",
    "[x](tg://user?id=1)",
    "[y](http://x)",
    "```",
    "<b>",
    "&amp;",
]


@FUZZ
@given(st.lists(st.sampled_from(MARKDOWN_PIECES), max_size=40).map("".join))
def test_any_answer_renders_to_markup_telegram_takes(markdown: str) -> None:
    rendered = to_html(markdown)
    assert parse_html(rendered) == to_plain(rendered)
    assert 'href="tg://user' not in rendered.lower()  # no inline mention: nobody is notified
