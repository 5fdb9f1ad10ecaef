"""The record of the messages a delivery posted, so that a rerun of its job edits them.

A job runs again when its run died midway (its lease ran out). The engine loads the record
first and shows the answer in the recorded messages, in order, before posting any new one; it
saves the record right after each post (before any other write) and after each delete. A
message that was natively streamed cannot be resumed: the rerun deletes it.

`StoredMessages` keeps the record in the plugin's job storage (one JSON list per key);
`MemoryMessages` keeps it for one run only (a bot answering a live message has no rerun).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, Literal, Protocol, TypeVar

from gateway.delivery.chat.adapter import MessageRef

__all__ = [
    "KeyValue",
    "MemoryMessages",
    "PostedKind",
    "PostedMessage",
    "PostedMessages",
    "Recorder",
    "StoredMessages",
]

PostedKind = Literal["message", "stream"]
POSTED_TTL = 24 * 3600.0
_FenceT = TypeVar("_FenceT")
_FenceT_contra = TypeVar("_FenceT_contra", contravariant=True)


@dataclass(frozen=True, slots=True)
class PostedMessage:
    ref: MessageRef
    kind: PostedKind = "message"  # "stream": opened with the platform's native streaming


class PostedMessages(Protocol):
    """Where the engine records what it posted."""

    async def load(self) -> list[PostedMessage]:
        """What earlier runs posted, oldest first (nothing on a first run)."""
        ...

    async def save(self, messages: Sequence[PostedMessage]) -> None:
        """Replace the record with `messages`."""
        ...


class MemoryMessages:
    """A record that lives as long as the object."""

    def __init__(self, messages: Sequence[PostedMessage] = ()) -> None:
        self.messages = list(messages)

    async def load(self) -> list[PostedMessage]:
        return list(self.messages)

    async def save(self, messages: Sequence[PostedMessage]) -> None:
        self.messages = list(messages)


class KeyValue(Protocol[_FenceT_contra]):
    """The part of a plugin's storage the record needs (`gateway.plugin.Storage` has it, its
    fence being a job run's `Lease`)."""

    async def get(self, key: str) -> str | None: ...
    async def set(self, key: str, value: str, *, ttl: float | None = None, fence: _FenceT_contra | None = None) -> None:
        """With `fence`, written only while that run holds its job (`LeaseLost` otherwise)."""
        ...


class StoredMessages(Generic[_FenceT]):
    """A record under `key` in `storage`, kept `ttl` seconds after its last change.

    With `fence` (the run's `job.lease`) every save is fenced: a run that another one took over
    cannot overwrite the record of what the new run posted.
    """

    def __init__(
        self, storage: KeyValue[_FenceT], key: str, *, ttl: float = POSTED_TTL, fence: _FenceT | None = None
    ) -> None:
        self._storage = storage
        self._key = key
        self._ttl = ttl
        self._fence = fence

    async def load(self) -> list[PostedMessage]:
        raw = await self._storage.get(self._key)
        try:
            doc = json.loads(raw) if raw else []
        except ValueError:
            doc = []
        out: list[PostedMessage] = []
        for item in doc if isinstance(doc, list) else []:
            if (
                isinstance(item, list)
                and len(item) == 2
                and isinstance(item[0], str)
                and item[1] in ("message", "stream")
            ):
                out.append(PostedMessage(item[0], item[1]))
        return out

    async def save(self, messages: Sequence[PostedMessage]) -> None:
        data = json.dumps([[m.ref, m.kind] for m in messages])
        await self._storage.set(self._key, data, ttl=self._ttl, fence=self._fence)


class Recorder:
    """The record of one delivery as it grows: saved after every change."""

    def __init__(self, posted: PostedMessages, earlier: Sequence[PostedMessage] = ()) -> None:
        self._posted = posted
        self.messages = list(earlier)

    async def add(self, ref: MessageRef, kind: PostedKind = "message") -> None:
        self.messages.append(PostedMessage(ref, kind))
        await self._posted.save(self.messages)

    async def remove(self, ref: MessageRef) -> None:
        kept = [m for m in self.messages if m.ref != ref]
        if len(kept) != len(self.messages):
            self.messages = kept
            await self._posted.save(self.messages)
