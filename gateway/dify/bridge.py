"""Reverse calls: a plugin asks the Dify apps bound to its endpoint, with conversation memory.

This is `ctx.apps` (the `Apps` protocol of `gateway.plugin`). Every answer is streamed from Dify;
with a conversation key the Dify conversation is remembered per (key, user), continued on the
next call, and only one answer per conversation runs at a time. A key the caller has just made
up (`new_conversation=True`) is not looked up and joins no queue: one store write takes its lock
for a `stream` (whose caller may show the key while it streams), none for an `ask` (nobody can
learn the key before it returns). That write runs while the Dify stream opens, and the stream is
handed out only once the lock is held: the caller shows the key only after that, so nobody can
be ordered behind the answer before it holds the lock. When the write fails, the opened Dify
stream is closed and the call fails with the store's error, as it would have before opening;
the Dify conversation that opened is new, and its id was never remembered or shown.

Workflow and Completion apps have no `query`: the text goes into the input variable named by the
endpoint's `query_input` setting, else the app's own text input (`gateway.records.appform`), here, so no
plugin has to know about app modes.

Files go up with `upload` under the answer's user, checked against the app's file settings
(kept on its record, `gateway.records.appform.FileUpload`) before any byte is sent; Dify's refusals
become the caller's errors (400/413/415), not the app's failure.

With a `meter` (gateway/usage), every answer is checked against the endpoint's budgets before it
starts (`BudgetExceeded`) and its usage is recorded when it ends, however it ends: every surface
asks through here, so none goes unmetered.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any

from gateway.dify.client import DifyClient
from gateway.dify.conversations import ConversationLocks, ConversationMap
from gateway.dify.models import Answer, AskRequest, DifyApp
from gateway.dify.stream import DifyAnswerStream
from gateway.exceptions import BadRequest, NotFound, PayloadTooLarge, UnsupportedMediaType, UpstreamError
from gateway.plugin import AppInfo, UploadedFile
from gateway.records.appform import INPUT_MODES, file_type, query_input_for
from gateway.records.apps import AppRecord
from gateway.storage.base import Store
from gateway.usage.meter import AnswerMeter

__all__ = ["Bridge"]

_CODE = re.compile(r"[a-z_]{1,64}")  # a Dify error code worth repeating (never its message)
# RFC 6838 type/subtype names: a media type goes into a multipart header of the upload as it is.
_MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}", re.IGNORECASE)


class Bridge:
    """The apps bound to one endpoint (`records`, in binding order) and the calls to them."""

    def __init__(
        self,
        *,
        endpoint_id: str,
        records: Mapping[str, AppRecord],
        dify: DifyClient,
        store: Store,
        locks: ConversationLocks,
        key_of: Callable[[AppRecord], str],
        fallbacks: Mapping[str, AppRecord] | None = None,
        query_input: str | None = None,
        describe: Callable[[AppRecord], Awaitable[AppRecord]] | None = None,
        previous_key_of: Callable[[AppRecord], str | None] | None = None,
        meter: AnswerMeter | None = None,
    ) -> None:
        self._endpoint_id = endpoint_id
        self._records = dict(records)
        self._dify = dify
        self._store = store
        self._locks = locks
        self._key_of = key_of  # the decrypted API key of an app
        self._fallbacks = dict(fallbacks or {})
        self._query_input = query_input  # the endpoint's setting; None: each app's text input
        self._describe = describe  # reads an app's input form when its record lacks it
        self._previous_key_of = previous_key_of  # the key a rotation replaced, tried on 401 in its grace
        self._meter = meter  # budgets and usage recording; None: unmetered

    def _info(self, record: AppRecord) -> AppInfo:
        query_input = query_input_for(record.inputs, self._query_input) if record.mode in INPUT_MODES else None
        return AppInfo(
            record.name, record.mode, record.base_url, query_input, bool(record.output_moderation), record.files
        )

    async def _described(self, record: AppRecord) -> AppRecord:
        if record.described or self._describe is None:
            return record
        described = await self._describe(record)
        if self._records.get(record.name) is record:
            self._records[record.name] = described
        return described

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._records)

    def get(self, name: str | None = None) -> AppInfo:
        return self._info(self._record(name))

    async def describe(self, name: str | None = None) -> AppInfo:
        return self._info(await self._described(self._record(name)))

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
    ) -> contextlib.AbstractAsyncContextManager[DifyAnswerStream]:
        # A new conversation's key may be shown while it streams (e.g. in response headers):
        # its lock is taken, so a call that learns the key meanwhile waits for this answer.
        hold = self._locks.hold_new_soon if new_conversation else self._locks.hold
        return self._answer(query, user, conversation_key, inputs, files, app, new=new_conversation, hold=hold)

    @contextlib.asynccontextmanager
    async def _answer(
        self,
        query: str,
        user: str,
        conversation_key: str | None,
        inputs: Mapping[str, Any] | None,
        files: Sequence[Mapping[str, Any]],
        app: str | None,
        *,
        new: bool,
        hold: Callable[[str], contextlib.AbstractAsyncContextManager[Gate | None]],
    ) -> AsyncIterator[DifyAnswerStream]:
        """The answer to `query`; with a `conversation_key`, in its conversation (none yet when
        `new`), run under `hold(the conversation's lock key)`; the stream opens before the gate
        `hold` may yield is awaited (None: the lock is held, or none is needed), and is handed
        out after."""
        record = self._record(app)
        if self._meter is not None:
            await self._meter.check(record.name)  # at a spent budget the answer never starts
        # Uploaded files belong to this app's Dify user: another app can't see them.
        uploaded = any(item.get("transfer_method") == "local_file" for item in files)
        fallback = None if uploaded else self._fallbacks.get(record.name)
        fields = dict(inputs or {})
        for target in (record, fallback):
            if target is not None and target.mode in INPUT_MODES and query:
                target = await self._described(target)
                fields[query_input_for(target.inputs, self._query_input)] = query
        # A Completion app would also put a top-level query into its prompt: the input holds it.
        text = "" if record.mode in INPUT_MODES else query
        request = AskRequest(user=user, query=text, inputs=fields, files=tuple(files))
        if conversation_key is None:
            async with self._metered(self._open(record, request, fallback), record, user) as stream:
                yield stream
            return
        memory = ConversationMap(self._store, f"{self._endpoint_id}:{record.name}")
        async with hold(f"{self._endpoint_id}:{record.name}:{conversation_key}\x00{user}") as taken:
            known = None if new else await memory.get(conversation_key, user)
            stream = self._open(record, dataclasses.replace(request, conversation_id=known), fallback)
            opened = False  # a stream that failed to open has no conversation (and no builder to ask)
            try:
                async with self._metered(stream, record, user):
                    if taken is not None:
                        await taken()  # a store error here closes the stream: its conversation is dropped
                    opened = True
                    yield stream
            finally:
                # Saved even when the answer failed midway: Dify keeps the conversation either way.
                current = stream.conversation_id if opened else None
                answered_by_primary = stream.app.name == record.name
                if current and current != known and answered_by_primary:
                    await asyncio.shield(memory.put(conversation_key, user, current))

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
        # A new conversation's key can't be learned before this returns (its caller shows it
        # after the answer, if at all): nobody to keep out, so no lock to take.
        hold = _unlocked if new_conversation else self._locks.hold
        async with self._answer(
            query, user, conversation_key, inputs, files, app, new=new_conversation, hold=hold
        ) as s:
            return await s.collect()

    def open(self, request: AskRequest, *, app: str | None = None) -> DifyAnswerStream:
        """A call exactly as the caller built it (a Dify plugin's reverse call carries its own
        conversation id and inputs), with the app's fallback. Use as `async with`."""
        record = self._record(app)
        return self._open(record, request, self._fallbacks.get(record.name))

    async def upload(
        self, content: bytes, *, name: str, mime_type: str, user: str, app: str | None = None
    ) -> UploadedFile:
        if not _MEDIA_TYPE.fullmatch(mime_type):
            raise BadRequest(f"{mime_type[:60]!r} is not a media type (type/subtype)")
        if not 0 < len(name) <= 255 or any(ord(c) < 32 for c in name):
            raise BadRequest("a file name needs 1 to 255 printable characters")
        record = await self._described(self._record(app))
        kind = file_type(name, mime_type)
        extension = name.rsplit(".", 1)[-1] if "." in name else ""
        label = mime_type or "untyped"
        if record.files is not None:
            kind = record.files.check(
                record.name, kind=kind, label=label, extension=extension, method="local_file", size=len(content)
            )
        try:
            body = await self._dify.upload(
                self._to_dify(record), user=user, name=name, content=content, mime_type=mime_type
            )
        except UpstreamError as exc:
            raise _refusal(exc, record.name, label) from None
        size = body.get("size")
        return UploadedFile(
            id=body["id"],
            name=name,
            size=size if isinstance(size, int) else len(content),
            mime_type=mime_type,
            type=kind or "custom",
        )

    async def reset(self, conversation_key: str, *, user: str | None = None, app: str | None = None) -> None:
        names = [self._record(app).name] if app else list(self._records)
        for name in names:
            memory = ConversationMap(self._store, f"{self._endpoint_id}:{name}")
            if user is None:
                await memory.reset(conversation_key)
            else:
                await memory.forget(conversation_key, user)

    # -- helpers ----------------------------------------------------------------------------------

    def _record(self, name: str | None) -> AppRecord:
        if name is None and self._records:
            return next(iter(self._records.values()))
        if name is not None and name in self._records:
            return self._records[name]
        raise NotFound(f"no app {name!r} is bound to this endpoint" if name else "no app is bound to this endpoint")

    def _metered(
        self, stream: DifyAnswerStream, record: AppRecord, user: str
    ) -> contextlib.AbstractAsyncContextManager[DifyAnswerStream]:
        """`stream` opened, with its usage recorded at the end when there is a meter."""
        if self._meter is None:
            return stream
        return self._meter.measure(stream, app=record.name, user=user)

    def _to_dify(self, record: AppRecord) -> DifyApp:
        previous = self._previous_key_of(record) if self._previous_key_of else None
        key = self._key_of(record)
        return DifyApp(record.name, record.base_url, key, record.mode, previous_key=previous, guarded=record.guarded)  # type: ignore[arg-type]

    def _open(self, record: AppRecord, request: AskRequest, fallback: AppRecord | None) -> DifyAnswerStream:
        return self._dify.stream(self._to_dify(record), request, fallback=self._to_dify(fallback) if fallback else None)


Gate = Callable[[], Awaitable[None]]  # awaited before the answer's stream is handed out


def _unlocked(key: str) -> contextlib.AbstractAsyncContextManager[None]:
    return contextlib.nullcontext()


def _refusal(exc: UpstreamError, app: str, label: str) -> Exception:
    """Dify's answer to an upload as the caller's error when it is about the file (dify-api.md §2.6)."""
    if exc.upstream_status == 413:
        return PayloadTooLarge(f"the {label} file is larger than app {app!r} accepts")
    if exc.upstream_status == 415:
        return UnsupportedMediaType(f"app {app!r} does not accept {label} files")
    if exc.upstream_status == 403:
        return BadRequest(f"app {app!r} does not accept files (file upload is off in its Dify settings)")
    if exc.upstream_status == 400:
        code = exc.upstream_code if exc.upstream_code and _CODE.fullmatch(exc.upstream_code) else "bad request"
        return BadRequest(f"app {app!r} refused the {label} file ({code})")
    return exc
