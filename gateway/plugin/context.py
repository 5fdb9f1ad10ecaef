"""What a handler reaches through its `Context`: the endpoint, its settings, the bound Dify apps,
storage, the job queue, signed callbacks, HTTP, a logger and the clock; and the permissions that
open them. Protocols only: the gateway (and `gateway.testing`) provide the implementations (the
in-process `Memory` is one class for both)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel
from typing_extensions import TypeVar

from gateway.clock import Clock
from gateway.dify.models import Answer
from gateway.plugin.jobs import JobRun, JobStatus, Lease
from gateway.plugin.memory import Memory
from gateway.plugin.streams import AnswerStream
from gateway.records.appform import FileUpload

if TYPE_CHECKING:  # type names only: importing the contract does not load httpx or aiohttp
    import aiohttp
    import httpx

__all__ = [
    "AppInfo",
    "Apps",
    "Callbacks",
    "Context",
    "EndpointInfo",
    "HeldLock",
    "Jobs",
    "Permission",
    "SettingsT_co",
    "Storage",
    "UploadedFile",
]

# The settings model of a context (a pydantic model); `Context` alone means `Context[Any]`.
SettingsT_co = TypeVar("SettingsT_co", bound=BaseModel, covariant=True, default=Any)


class Permission(StrEnum):
    """What a plugin may reach through its `Context`; anything undeclared raises `PermissionDenied`."""

    APPS = "apps"  # invoke the Dify apps bound to the endpoint
    STORAGE = "storage"  # key-value storage scoped to the endpoint
    JOBS = "jobs"  # the durable job queue
    HTTP = "http"  # the outbound HTTP client


@dataclass(frozen=True, slots=True)
class EndpointInfo:
    id: str
    plugin: str
    url: str
    apps: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AppInfo:
    """A Dify app bound to the endpoint (its key stays inside the gateway).

    `query_input`: for Workflow and Completion apps, the input variable that receives the text
    given to `Apps.ask`/`Apps.stream` (the endpoint's `query_input` setting, else the app's text
    input); None for chat apps. `output_moderation`: Dify moderates the app's output, so a
    streamed answer may be replaced at its end (`replace` delta): buffer it before showing it
    where shown text can't be taken back. `files`: the files the app accepts (`FileUpload.check`
    tells whether one goes and as which Dify type); None while not known. All three are known
    once the app's `GET /parameters` was read (see `Apps.describe`).
    """

    name: str
    mode: str
    base_url: str
    query_input: str | None = None
    output_moderation: bool = False
    files: FileUpload | None = None


@dataclass(frozen=True, slots=True)
class UploadedFile:
    """A file uploaded to a Dify app (`Apps.upload`); pass `as_input()` in `files=` of `ask`/`stream`
    under the same `user` that uploaded it (Dify refuses it for anyone else)."""

    id: str
    name: str
    size: int
    mime_type: str
    type: str  # Dify's file type: image, document, audio, video or custom

    def as_input(self) -> dict[str, str]:
        return {"type": self.type, "transfer_method": "local_file", "upload_file_id": self.id}


class Storage(Protocol):
    """Key-value storage scoped to one endpoint. Values are strings; TTLs are seconds."""

    async def get(self, key: str) -> str | None: ...
    async def set(self, key: str, value: str, *, ttl: float | None = None, fence: Lease | None = None) -> None:
        """With `fence` (a job's `lease`), only while that run holds its job, in one atomic write;
        `LeaseLost` otherwise. Records of what a run posted (what a rerun edits) are written so."""
        ...

    async def set_if_absent(self, key: str, value: str, *, ttl: float | None = None) -> bool: ...
    async def delete(self, key: str) -> bool: ...
    async def incr(self, key: str, amount: int = 1, *, ttl: float | None = None) -> int: ...
    def lock(self, name: str, ttl: float = 30.0, *, wait: float = 10.0) -> AbstractAsyncContextManager[HeldLock]:
        """Hold the endpoint's lock `name` across replicas while the block runs::

            async with ctx.storage.lock("sync-users", ttl=60):
                ...  # one process at a time, on every replica

        Waits up to `wait` seconds for it, then raises `LockBusy` (409). While held it is
        renewed every `ttl / 3`; it is released when the block ends, only by its holder (a
        holder that dies frees it `ttl` seconds after its last renewal). Locks are apart from
        the keys of `get`/`set`."""
        ...


class HeldLock(Protocol):
    """A lock held with `ctx.storage.lock`."""

    @property
    def lost(self) -> bool:
        """True once a renewal found the lock taken over (this process stalled longer than its ttl)."""
        ...


class Jobs(Protocol):
    """The durable job queue, for work that outlives the inbound request."""

    async def enqueue(
        self, name: str, payload: dict[str, Any], *, key: str | None = None, delay: float = 0.0, max_attempts: int = 8
    ) -> str:
        """Queue the plugin's job handler `name`; with `key`, a second enqueue returns the first job's id."""
        ...

    async def start(
        self, name: str, payload: dict[str, Any], *, key: str | None = None, max_attempts: int = 8
    ) -> tuple[JobRun, bool]:
        """Queue the job durably and run it in this process now, to watch its progress events.

        Returns the run and whether the job is new (False: `key` named an existing job, whose
        outcome the run reports). If this process dies, another one runs the job.
        """
        ...

    async def get(self, job_id: str) -> JobStatus | None:
        """A job of this endpoint, or None."""
        ...


class Apps(Protocol):
    """The Dify apps bound to the endpoint, and reverse calls to them.

    With a `conversation_key` (e.g. `slack:{team}:{channel}:{thread}`), the gateway remembers the
    Dify conversation of that key and `user` (surviving restarts, shared by replicas), never
    continues it under another user, and runs one answer per conversation at a time (later ones
    wait, in order). Without one, every call starts a new conversation.

    `new_conversation=True` promises that `conversation_key` was made up for this call (a random
    id nobody has seen yet, and for `ask` nobody sees before it returns): the conversation starts
    without a lookup or a queue, sparing store round trips. A call that learns the key while
    `stream` runs (say, from a response header) still waits for this answer, then continues it.
    """

    @property
    def names(self) -> tuple[str, ...]: ...
    def get(self, name: str | None = None) -> AppInfo:
        """The named app, or the first bound one; `NotFound` otherwise."""
        ...

    async def describe(self, name: str | None = None) -> AppInfo:
        """Like `get`, after reading the app's input form, moderation and file settings from Dify if not known yet."""
        ...

    async def upload(
        self, content: bytes, *, name: str, mime_type: str, user: str, app: str | None = None
    ) -> UploadedFile:
        """Upload a file to the app (`POST /files/upload`) under `user`, the user of the answer that uses it.

        Checked first against what the app accepts (`AppInfo.files`): `BadRequest` when it takes
        no files (or only by URL), `UnsupportedMediaType` naming a type it refuses,
        `PayloadTooLarge` past its size limit; Dify's own refusals raise the same.
        A call with uploaded files is not passed to the app's fallback (it can't see them)."""
        ...

    def stream(
        self,
        query: str,
        *,
        user: str,
        conversation_key: str | None = None,
        inputs: Mapping[str, Any] | None = None,
        files: Sequence[Mapping[str, Any]] = (),
        app: str | None = None,
        new_conversation: bool = False,
    ) -> AbstractAsyncContextManager[AnswerStream]:
        """Stream an answer: `async with ctx.apps.stream(q, user=u) as s: async for delta in s: ...`;
        `s.answer` holds the assembled answer. Leaving the block early stops the Dify task.

        For a Workflow or Completion app the query goes into `inputs[AppInfo.query_input]`."""
        ...

    async def ask(
        self,
        query: str,
        *,
        user: str,
        conversation_key: str | None = None,
        inputs: Mapping[str, Any] | None = None,
        files: Sequence[Mapping[str, Any]] = (),
        app: str | None = None,
        new_conversation: bool = False,
    ) -> Answer:
        """The whole answer (streamed from Dify and assembled)."""
        ...

    async def reset(self, conversation_key: str, *, user: str | None = None, app: str | None = None) -> None:
        """Forget the key's conversation of `user` (every user's when None): the next message starts anew."""
        ...


class Context(Protocol[SettingsT_co]):
    """Everything a handler may use. Reaching an undeclared permission raises `PermissionDenied`.

    Typed by the plugin's settings model: a handler of a `Plugin[SlackSettings]` takes a
    `Context[SlackSettings]`, whose `settings` is a `SlackSettings` (a bare `Context` has `Any`).
    """

    @property
    def endpoint(self) -> EndpointInfo: ...
    @property
    def settings(self) -> SettingsT_co:
        """The endpoint's settings, validated by the plugin's model, secrets decrypted."""
        ...

    @property
    def apps(self) -> Apps: ...
    @property
    def storage(self) -> Storage: ...
    @property
    def jobs(self) -> Jobs: ...
    @property
    def http(self) -> httpx.AsyncClient: ...
    def aiohttp_connector(self) -> aiohttp.BaseConnector:
        """A new connector for an SDK that brings its own aiohttp session (slack_sdk's
        `AsyncWebClient`): `aiohttp.ClientSession(connector=ctx.aiohttp_connector())`, which owns
        and closes it. Its connections pass the same checks as `http`'s (for an endpoint a
        workspace token configured: public addresses only, checked at connect time). Needs the
        HTTP permission."""
        ...

    @property
    def callbacks(self) -> Callbacks:
        """Needs the HTTP permission."""
        ...

    @property
    def logger(self) -> logging.LoggerAdapter[logging.Logger]: ...
    @property
    def clock(self) -> Clock: ...
    @property
    def memory(self) -> Memory:
        """Values kept in this process for a short while (`gateway.plugin.memory`), the endpoint's own."""
        ...

    def secrets(self, setting: str) -> tuple[str, ...]:
        """The secret setting's current value, then the values `endpoints rotate-secret` replaced that
        are still in their grace: verify a signature against each (empty when the setting is unset)."""
        ...


class Callbacks(Protocol):
    """Signed callbacks (Standard Webhooks) to URLs given by callers, delivered durably with retries."""

    async def check(self, url: str) -> None:
        """Raise `BadRequest` when `url` may not receive callbacks (scheme, private address, …)."""
        ...

    async def send(
        self, url: str, event_type: str, data: Mapping[str, Any], *, msg_id: str, secret_setting: str = "secret"
    ) -> str:
        """Queue a callback signed with the endpoint's `secret_setting` (a `whsec_` secret).

        `msg_id` becomes the `webhook-id`, identical on every retry; queuing the same `msg_id`
        twice sends it once. Returns the delivery's job id.
        """
        ...
