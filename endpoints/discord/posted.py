"""The messages an `ask` job posted, remembered under the job's id so that a rerun edits them.

The gateway runs a job again when its lease runs out (the process died midway). The rerun edits
the interaction's original response again, and takes over the follow-ups and channel messages the
earlier attempt posted instead of posting them a second time (the Slack plugin's `SlackOut` does
the same). Ids are kept for a day in endpoint storage, one JSON document per job::

    {"webhook": ["1001", "1002"], "channel": ["2001"]}
"""

from __future__ import annotations

import json
from typing import Any, Literal

from endpoints.discord.api import DiscordAPIError
from endpoints.discord.messages import MessageSink
from gateway.plugin import Lease, Storage

__all__ = ["POSTED_TTL", "PostedMessages", "RecordingSink"]

POSTED_TTL = 24 * 3600.0
Where = Literal["webhook", "channel"]
_PLACES: tuple[Where, ...] = ("webhook", "channel")


class PostedMessages:
    """The ids of the messages one job posted, by where they went (`webhook` follow-ups, `channel` messages)."""

    def __init__(self, storage: Storage, job_id: str, *, lease: Lease | None = None) -> None:
        self._storage = storage
        self._lease = lease
        self._key = f"posted:{job_id}"
        self._ids: dict[Where, list[str]] = {place: [] for place in _PLACES}

    async def load(self) -> dict[Where, list[str]]:
        """What earlier attempts of the job posted (nothing for a first run)."""
        raw = await self._storage.get(self._key)
        try:
            doc = json.loads(raw) if raw else {}
        except ValueError:
            doc = {}
        for place in _PLACES:
            ids = doc.get(place) if isinstance(doc, dict) else None
            self._ids[place] = [str(i) for i in ids] if isinstance(ids, list) else []
        return {place: list(ids) for place, ids in self._ids.items()}

    def recording(self, where: Where, sink: MessageSink) -> RecordingSink:
        """`sink`, remembering here what it posts and forgetting what it deletes."""
        return RecordingSink(self, where, sink)

    async def add(self, where: Where, message_id: str) -> None:
        self._ids[where].append(message_id)
        await self._save()

    async def remove(self, where: Where, message_id: str) -> None:
        if message_id in self._ids[where]:
            self._ids[where].remove(message_id)
            await self._save()

    async def _save(self) -> None:
        if self._lease is None:
            await self._storage.set(self._key, json.dumps(self._ids), ttl=POSTED_TTL)
        else:
            await self._storage.set(self._key, json.dumps(self._ids), ttl=POSTED_TTL, fence=self._lease)


class RecordingSink:
    """A `MessageSink` that records the ids of the messages it posts (before anything else happens)."""

    def __init__(self, posted: PostedMessages, where: Where, sink: MessageSink) -> None:
        self._posted = posted
        self._where = where
        self._sink = sink

    async def send(self, content: str, *, wait: bool) -> Any:
        handle = await self._sink.send(content, wait=wait)
        await self._posted.add(self._where, str(handle))
        return handle

    async def edit(self, handle: Any, content: str, *, wait: bool) -> None:
        await self._sink.edit(handle, content, wait=wait)

    async def delete(self, handle: Any, *, wait: bool) -> None:
        try:
            await self._sink.delete(handle, wait=wait)
        except DiscordAPIError as exc:
            if exc.status != 404:  # already gone (deleted by hand): nothing left to do
                raise
        await self._posted.remove(self._where, str(handle))
