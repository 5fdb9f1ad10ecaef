"""The card Markdown of an answer: tags and mentions escaped, links spelled out, code kept, and
escapes never cut in two when an answer is split."""

from __future__ import annotations

import json
from typing import Any

import pytest

from endpoints.lark.events import LarkTrigger, Mention, classify, message_text
from endpoints.lark.render import is_reset, protect_entities, to_card_markdown
from gateway.plugin import split_text
from gateway.testing import lark_message_event


@pytest.mark.parametrize(
    ("answer", "shown"),
    [
        ("<at id=all></at> hi", "&lt;at id=all>&lt;/at> hi"),
        ('<font color="red">x</font>', '&lt;font color="red">x&lt;/font>'),
        ("[docs](https://d.test)", "docs (https://d.test)"),
        ('[docs](https://d.test "title")', "docs (https://d.test)"),
        ("[https://d.test](https://d.test)", "https://d.test"),
        ("![chart](img_v2_abc)", "chart"),
        ("`<at id=all>` and ```\n<b>[x](y)</b>\n```", "`<at id=all>` and ```\n<b>[x](y)</b>\n```"),
        ("a < b and b > c", "a &lt; b and b > c"),
    ],
)
def test_card_markdown(answer: str, shown: str) -> None:
    assert to_card_markdown(answer) == shown


def test_a_split_never_cuts_an_escape() -> None:
    text = to_card_markdown("x" * 94 + "<<<<<<" + " tail" * 40)  # a hard cut at 96 falls in an escape
    for page in split_text(text, 100, protect=protect_entities):
        assert not page.endswith(("&", "&l", "&lt")) and not page.startswith(("lt;", "t;", ";"))


@pytest.mark.parametrize("said", ["reset", "/reset", " Reset ", "重置"])
def test_reset_words(said: str) -> None:
    assert is_reset(said)


def test_not_reset() -> None:
    assert not is_reset("reset my password")


def test_a_post_in_a_language_wrapper_is_read() -> None:
    content = '{"zh_cn": {"title": "T", "content": [[{"tag": "text", "text": "hello"}]]}}'
    assert message_text("post", content) == "T\nhello"
    assert message_text("text", "not json") is None and message_text("text", '{"text": 5}') is None


def test_mention_keys_are_replaced_longest_first() -> None:
    trigger = LarkTrigger(
        event_id="e",
        tenant="t",
        message_id="m",
        chat_id="c",
        chat_type="group",
        sender="ou_u",
        text="@_user_1 ask @_user_10",
        mentions=(Mention("@_user_1", "ou_bot", "Dify"), Mention("@_user_10", "ou_x", "Xu")),
    )
    assert trigger.question("ou_bot") == "ask @Xu"
    assert LarkTrigger.from_payload(trigger.to_payload()) == trigger


def test_the_job_payload_carries_every_field_of_the_trigger() -> None:
    # `to_payload` spells the fields out: one it leaves out would reach the job as its default.
    values: dict[str, Any] = {name: f"value of {name}" for name in LarkTrigger.__dataclass_fields__}
    values["mentions"] = (Mention("@_user_1", "ou_bot", "Dify"),)
    trigger = LarkTrigger(**values)  # no field at its default
    payload = trigger.to_payload()
    assert payload.keys() == LarkTrigger.__dataclass_fields__.keys()
    assert LarkTrigger.from_payload(json.loads(json.dumps(payload))) == trigger  # as the queue keeps it


def test_events_missing_what_an_answer_needs_are_ignored() -> None:
    event = lark_message_event("hi", token="t")
    del event["event"]["sender"]["sender_id"]
    assert isinstance(classify(event), str)
    assert isinstance(classify({"schema": "2.0"}), str)
