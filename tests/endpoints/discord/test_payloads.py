"""Interaction payloads, the conversation mapping and the command definitions: pure functions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from endpoints.discord.interactions import (
    InteractionCommand,
    command_definitions,
    conversation_key,
    message_response,
    user_key,
)
from tests.support.discord_interactions import command


def test_a_guild_command() -> None:
    parsed = InteractionCommand.from_payload(command("ask", "hi there", guild="5", channel="6", user="7"))
    assert (parsed.name, parsed.guild_id, parsed.channel_id, parsed.user_id) == ("ask", "5", "6", "7")
    assert parsed.options == {"question": "hi there"}
    assert parsed.conversation_key == "discord:5:6" and parsed.user == "discord:7"


def test_a_dm_command_and_numeric_ids() -> None:
    payload = command("reset", guild=None, channel="6", user="7")
    del payload["channel_id"]  # older payloads: only the channel object
    parsed = InteractionCommand.from_payload(payload)
    assert parsed.guild_id is None and parsed.channel_id == "6"
    assert parsed.conversation_key == "discord:dm:6"
    payload["id"] = 123
    assert InteractionCommand.from_payload(payload).id == "123"


def test_options_that_are_not_name_value_pairs_are_ignored() -> None:
    payload = command("ask", "q")
    payload["data"]["options"] += ["junk", {"name": 3, "value": "x"}, {"name": "flag"}]
    assert InteractionCommand.from_payload(payload).options == {"question": "q"}


@pytest.mark.parametrize(
    "breakage",
    [
        lambda p: p.pop("data"),
        lambda p: p.pop("member"),
        lambda p: p.update(member={"user": "nope"}),
        lambda p: p.update(token=""),
        lambda p: p.update(id=True),
        lambda p: p.update(channel_id=None, channel=None),
        lambda p: p["data"].pop("name"),
        lambda p: p.update(guild_id={"x": 1}),
        lambda p: p["data"].update(options=5),  # not a list: was a TypeError (a 500)
        lambda p: p["data"].update(options=True),
    ],
)
def test_malformed_commands_are_refused(breakage: Callable[[dict[str, Any]], object]) -> None:
    payload = command("ask", "q")
    breakage(payload)
    with pytest.raises(ValueError):
        InteractionCommand.from_payload(payload)


def test_keys_are_shared_with_the_bot() -> None:
    assert conversation_key(1, 2) == "discord:1:2"
    assert conversation_key(None, 2) == "discord:dm:2"
    assert user_key(7) == "discord:7"


def test_message_responses_never_ping() -> None:
    assert message_response("hi") == {"type": 4, "data": {"content": "hi", "allowed_mentions": {"parse": []}}}
    assert message_response("hi", ephemeral=True)["data"]["flags"] == 64


def test_command_definitions() -> None:
    guild = command_definitions("ask", "reset", global_=False)
    assert [c["name"] for c in guild] == ["ask", "reset"]
    assert all("contexts" not in c for c in guild)
    assert guild[0]["options"][0] == {
        "type": 3,
        "name": "question",
        "description": "Your question",
        "required": True,
        "max_length": 4000,
    }
    assert all(c["contexts"] == [0, 1, 2] for c in command_definitions("q", "r", global_=True))
