"""What an `ask` job posted, in storage under the job's id: recording, reloading, forgetting."""

from __future__ import annotations

import json
from typing import Any

import pytest

from endpoints.discord.api import DiscordAPIError
from endpoints.discord.messages import PagedMessages
from endpoints.discord.posted import POSTED_TTL, PostedMessages

pytestmark = pytest.mark.anyio


class Storage:
    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.ttls: dict[str, float | None] = {}

    async def get(self, key: str) -> str | None:
        return self.values.get(key)

    async def set(self, key: str, value: str, *, ttl: float | None = None) -> None:
        self.values[key], self.ttls[key] = value, ttl


class Sink:
    def __init__(self, refuse_delete: int = 0) -> None:
        self.refuse_delete = refuse_delete
        self.calls: list[tuple[str, Any]] = []
        self._next = 1000

    async def send(self, content: str, *, wait: bool) -> str:
        self._next += 1
        self.calls.append(("send", self._next))
        return str(self._next)

    async def edit(self, handle: Any, content: str, *, wait: bool) -> None:
        self.calls.append(("edit", handle))

    async def delete(self, handle: Any, *, wait: bool) -> None:
        self.calls.append(("delete", handle))
        if self.refuse_delete:
            raise DiscordAPIError(self.refuse_delete, "refused")


async def test_posts_are_recorded_per_job_and_place_and_reloaded() -> None:
    storage = Storage()
    posted = PostedMessages(storage, "job_1")  # type: ignore[arg-type]
    assert await posted.load() == {"webhook": [], "channel": []}
    webhook = posted.recording("webhook", Sink())
    assert await webhook.send("a", wait=True) == "1001"
    await posted.recording("channel", Sink()).send("b", wait=True)
    assert json.loads(storage.values["posted:job_1"]) == {"webhook": ["1001"], "channel": ["1001"]}
    assert storage.ttls["posted:job_1"] == POSTED_TTL

    again = PostedMessages(storage, "job_1")  # type: ignore[arg-type]
    assert await again.load() == {"webhook": ["1001"], "channel": ["1001"]}
    assert await PostedMessages(storage, "job_2").load() == {"webhook": [], "channel": []}  # type: ignore[arg-type]


@pytest.mark.parametrize("raw", ["not json", "[1, 2]", '{"webhook": "1001", "channel": null}'])
async def test_an_unreadable_record_counts_as_nothing_posted(raw: str) -> None:
    storage = Storage()
    storage.values["posted:job_1"] = raw
    assert await PostedMessages(storage, "job_1").load() == {"webhook": [], "channel": []}  # type: ignore[arg-type]


async def test_a_rerun_edits_earlier_messages_and_deletes_leftovers_only_at_the_end() -> None:
    storage = Storage()
    posted = PostedMessages(storage, "job_1")  # type: ignore[arg-type]
    storage.values["posted:job_1"] = json.dumps({"webhook": ["901", "902"], "channel": []})
    earlier = await posted.load()
    sink = Sink()
    pages = PagedMessages(posted.recording("webhook", sink), existing=["@original", *earlier["webhook"]])

    await pages.render("short", wait=False)  # still growing: the earlier follow-ups wait for it
    await pages.render("x " * 1500, wait=False)
    assert sink.calls == [("edit", "@original"), ("edit", "@original"), ("edit", "901")]
    await pages.render("the end", wait=True, final=True)

    assert sink.calls[3:] == [("edit", "@original"), ("delete", "902"), ("delete", "901")]
    assert json.loads(storage.values["posted:job_1"]) == {"webhook": [], "channel": []}


async def test_a_message_already_gone_is_forgotten_other_refusals_are_raised() -> None:
    storage = Storage()
    posted = PostedMessages(storage, "job_1")  # type: ignore[arg-type]
    gone = posted.recording("webhook", Sink(refuse_delete=404))
    await gone.send("a", wait=True)
    await gone.delete("1001", wait=True)
    await gone.delete("1001", wait=True)  # twice: nothing left to forget
    assert json.loads(storage.values["posted:job_1"])["webhook"] == []

    refused = posted.recording("channel", Sink(refuse_delete=403))
    await refused.send("b", wait=True)
    with pytest.raises(DiscordAPIError):
        await refused.delete("1001", wait=True)
    assert json.loads(storage.values["posted:job_1"])["channel"] == ["1001"]
