"""The plugin contract: the one module plugin authors import.

A plugin is a `Plugin` value found through the `dify_gateway.plugins` entry-point group. It
declares a name, a pydantic settings model (fields typed `SecretStr` are encrypted at rest and
masked on read), the permissions it needs, a verifier, routes below the endpoint URL and job
handlers::

    from pydantic import BaseModel, SecretStr
    from gateway.plugin import Context, Permission, Plugin, Request, Response, Verdict

    class Settings(BaseModel):
        signing_secret: SecretStr

    async def verify(request: Request, ctx: Context) -> Verdict:
        ...  # check a signature over request.body
        return Verdict.ok()

    plugin = Plugin("mine", settings=Settings, permissions={Permission.JOBS}, verifier=verify)

    @plugin.route("/events", methods=["POST"])
    async def events(request: Request, ctx: Context) -> Response:
        await ctx.jobs.enqueue("answer", {"text": request.json()["text"]}, key=request.headers.get("x-id"))
        return Response.json({"ok": True})

    @plugin.job("answer", secrets=("reply_url",))
    async def answer(job: JobInfo, ctx: Context) -> None:
        await job.fence()  # before every write to the outside: raises LeaseLost once another run took over
        ...

Handlers see a framework-neutral `Request` (raw body bytes, raw query string, multi-valued
headers) and return a `Response`, whose body may be an async iterator (streamed as produced).
The signature checks of the platforms (Slack, Discord, Standard Webhooks, HMAC) are re-exported
here as pure functions, and so are the helpers of chat plugins (`gateway.delivery.chat.text`: the edit
throttle, fence-aware message splitting; `gateway.retry_after`: the one `Retry-After` reader) and
the chat-delivery engine (`gateway.delivery.chat`: a platform's `ChatAdapter` and `ChatRules`,
`deliver`), so a plugin needs nothing else from the gateway.
"""

from __future__ import annotations

import asyncio
import json as _json
import logging
import re
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qsl

from pydantic import BaseModel, Field

from gateway.clock import Clock
from gateway.delivery.chat import (
    AnswerSource,
    ChatAdapter,
    ChatRules,
    Delivered,
    Fence,
    Handover,
    KeyValue,
    MemoryMessages,
    MessageRef,
    NativeStream,
    PostedKind,
    PostedMessage,
    PostedMessages,
    StoredMessages,
    StreamUnavailable,
    default_failure_note,
    deliver,
    failure_code,
)
from gateway.delivery.chat.text import (
    FENCE,
    EditThrottle,
    as_text,
    backoff_seconds,
    cut_point,
    last_break,
    open_fence,
    split_text,
)
from gateway.dify.models import Answer, Delta
from gateway.dify.stream import AnswerStream
from gateway.dify.structured import (
    NO_FALLBACK,
    Structured,
    enforce,
    extract_json,
    problems,
    schema_error,
    schema_instruction,
)
from gateway.exceptions import (
    BadRequest,
    ConfigurationError,
    GatewayError,
    JobError,
    LockBusy,
    NotFound,
    Overloaded,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    RetryJob,
    Unauthorized,
    UnsupportedMediaType,
    UpstreamError,
)
from gateway.records.appform import FileUpload, file_type
from gateway.retry_after import retry_after_seconds
from gateway.security.boundedjson import loads as bounded_loads
from gateway.security.signatures import (
    check_timestamp,
    new_webhook_secret,
    parse_ed25519_public_key,
    parse_webhook_secret,
    sign_standard_webhook,
    slack_signature,
    standard_webhook_headers,
    verify_discord,
    verify_ed25519,
    verify_hmac_hex,
    verify_slack,
    verify_standard_webhook,
)

if TYPE_CHECKING:
    import httpx

__all__ = [
    "ALL_METHODS",
    "Action",
    "ActionHandler",
    "ActionResult",
    "Answer",
    "AnswerSource",
    "AnswerStream",
    "AppInfo",
    "Apps",
    "BadRequest",
    "Callbacks",
    "ChatAdapter",
    "ChatRules",
    "Clock",
    "ConfigurationError",
    "Context",
    "Delivered",
    "Delta",
    "EditThrottle",
    "EndpointInfo",
    "FENCE",
    "Fence",
    "FileUpload",
    "GatewayError",
    "Handler",
    "Handover",
    "Headers",
    "HeldLock",
    "JobError",
    "JobHandler",
    "JobInfo",
    "JobRun",
    "JobStatus",
    "Jobs",
    "KeyValue",
    "Lease",
    "LeaseLost",
    "LockBusy",
    "MemoryMessages",
    "MessageRef",
    "NO_FALLBACK",
    "NativeStream",
    "NotFound",
    "Overloaded",
    "PayloadTooLarge",
    "Permission",
    "PermissionDenied",
    "Plugin",
    "PostedKind",
    "PostedMessage",
    "PostedMessages",
    "RateLimited",
    "Request",
    "Response",
    "RetryJob",
    "Route",
    "Storage",
    "StoredMessages",
    "StreamUnavailable",
    "Structured",
    "Unauthorized",
    "UnsupportedMediaType",
    "UploadedFile",
    "UpstreamError",
    "Verdict",
    "Verifier",
    "as_text",
    "backoff_seconds",
    "check_timestamp",
    "cut_point",
    "default_failure_note",
    "deliver",
    "enforce",
    "extract_json",
    "failure_code",
    "file_type",
    "last_break",
    "new_webhook_secret",
    "open_fence",
    "parse_ed25519_public_key",
    "parse_webhook_secret",
    "problems",
    "query_input_setting",
    "retry_after_seconds",
    "schema_error",
    "schema_instruction",
    "sign_standard_webhook",
    "slack_signature",
    "split_text",
    "standard_webhook_headers",
    "unverified",
    "verify_discord",
    "verify_ed25519",
    "verify_hmac_hex",
    "verify_slack",
    "verify_standard_webhook",
]

ALL_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


class Permission(StrEnum):
    """What a plugin may reach through its `Context`; anything undeclared raises `PermissionDenied`."""

    APPS = "apps"  # invoke the Dify apps bound to the endpoint
    STORAGE = "storage"  # key-value storage scoped to the endpoint
    JOBS = "jobs"  # the durable job queue
    HTTP = "http"  # the outbound HTTP client


# -- request and response ------------------------------------------------------------------------


class Headers(Mapping[str, str]):
    """Case-insensitive, multi-valued request headers, kept in arrival order.

    Values are latin-1 decoded strings, exactly as received; `get_bytes` gives the original bytes
    for signature checks.
    """

    __slots__ = ("_first", "_raw")

    def __init__(self, raw: Iterable[tuple[str, str]] = ()) -> None:
        self._raw = tuple((name.lower(), value) for name, value in raw)
        first: dict[str, str] = {}
        for name, value in self._raw:
            first.setdefault(name, value)
        self._first = first

    @classmethod
    def from_asgi(cls, raw: Iterable[tuple[bytes, bytes]]) -> Headers:
        return cls((name.decode("latin-1"), value.decode("latin-1")) for name, value in raw)

    def __getitem__(self, name: str) -> str:
        return self._first[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._first

    def __iter__(self) -> Iterator[str]:
        return iter(self._first)

    def __len__(self) -> int:
        return len(self._first)

    def getall(self, name: str) -> list[str]:
        """Every value of a repeated header, in order."""
        lowered = name.lower()
        return [value for key, value in self._raw if key == lowered]

    def get_bytes(self, name: str) -> bytes | None:
        value = self._first.get(name.lower())
        return None if value is None else value.encode("latin-1")

    @property
    def raw(self) -> tuple[tuple[str, str], ...]:
        return self._raw

    def __repr__(self) -> str:
        return f"Headers({list(self._raw)!r})"


@dataclass(frozen=True, slots=True)
class Request:
    """An inbound request to an endpoint, as received.

    `path` is the sub-path below the endpoint URL ("/" for the URL itself); `body` the raw bytes
    (verify before parsing); `query_string` the raw, undecoded query.
    """

    method: str
    path: str
    query_string: str
    headers: Headers
    body: bytes
    endpoint_id: str
    endpoint_url: str
    received_at: float
    client_ip: str | None = None
    path_params: Mapping[str, str] = field(default_factory=dict)
    request_id: str = ""

    @property
    def query(self) -> list[tuple[str, str]]:
        """The query string parsed into (name, value) pairs, repeats kept."""
        return parse_qsl(self.query_string, keep_blank_values=True)

    def text(self) -> str:
        try:
            return self.body.decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest("the request body is not valid UTF-8") from None

    def json(self) -> Any:
        """The body parsed as JSON; `BadRequest` when it isn't, or nests deeper than 64 levels."""
        return bounded_loads(self.body)

    def form(self) -> dict[str, list[str]]:
        """The body parsed as application/x-www-form-urlencoded."""
        pairs = parse_qsl(self.text(), keep_blank_values=True)
        out: dict[str, list[str]] = {}
        for name, value in pairs:
            out.setdefault(name, []).append(value)
        return out


@dataclass(slots=True)
class Response:
    """What a handler answers. `body` may be bytes or an async iterable of bytes (streamed)."""

    status: int = 200
    body: bytes | AsyncIterable[bytes] = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    media_type: str | None = None

    @classmethod
    def json(cls, data: Any, status: int = 200, headers: Sequence[tuple[str, str]] = ()) -> Response:
        body = _json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
        return cls(status, body, list(headers), "application/json")

    @classmethod
    def text(cls, text: str, status: int = 200, headers: Sequence[tuple[str, str]] = ()) -> Response:
        return cls(status, text.encode(), list(headers), "text/plain; charset=utf-8")

    @classmethod
    def empty(cls, status: int = 204, headers: Sequence[tuple[str, str]] = ()) -> Response:
        return cls(status, b"", list(headers))

    @classmethod
    def stream(
        cls,
        chunks: AsyncIterable[bytes],
        media_type: str = "text/event-stream",
        status: int = 200,
        headers: Sequence[tuple[str, str]] = (),
    ) -> Response:
        """Stream `chunks` as they are produced. For SSE, proxies are told not to buffer."""
        extra = (
            [("cache-control", "no-cache"), ("x-accel-buffering", "no")] if media_type == "text/event-stream" else []
        )
        return cls(status, chunks, [*extra, *headers], media_type)


@dataclass(frozen=True, slots=True)
class Verdict:
    """The verifier's decision, recorded in the request log. `status` is ok, failed or skipped."""

    status: str
    reason: str = ""
    response: Response | None = None

    @classmethod
    def ok(cls) -> Verdict:
        return cls("ok")

    @classmethod
    def failed(cls, reason: str, response: Response | None = None) -> Verdict:
        """Reject the request; `response` replaces the default 401 JSON error (e.g. an OpenAI error object)."""
        return cls("failed", reason, response)

    @classmethod
    def skipped(cls) -> Verdict:
        return cls("skipped")

    @property
    def passed(self) -> bool:
        return self.status != "failed"


# -- what a plugin reaches through its context ---------------------------------------------------


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


def query_input_setting() -> Any:
    """The `query_input` field of a plugin's settings model, the same in every plugin:
    `query_input: str | None = query_input_setting()`. The gateway reads it (see `AppInfo.query_input`)."""
    return Field(
        default=None,
        min_length=1,
        max_length=128,
        description="Input variable of Workflow/Completion apps that receives the user's text "
        "(default: the app's text input, read from GET /parameters)",
    )


def _no_progress(event: dict[str, Any]) -> None:
    """Where progress goes when nobody is watching the job."""


class LeaseLost(asyncio.CancelledError):
    """This run of a job lost its lease: another run (another replica, after a freeze) took the job
    over. The run must stop at once and write nothing more. A cancellation, so `except Exception`
    does not swallow it; the worker records nothing for a run that ended with it."""


class Lease(Protocol):
    """A run's hold on its job. `attempt` (the job's claim count) is the run's fencing token."""

    @property
    def attempt(self) -> int: ...

    def held(self) -> bool:
        """False once the run knows, or its own clock says, that the lease is gone (no I/O)."""
        ...

    async def check(self) -> None:
        """Raise `LeaseLost` unless this run still holds its job (its clock, then the store)."""
        ...


class _Unfenced:
    """The lease of a `JobInfo` made outside the job workers (a direct call, a test): always held."""

    attempt = 0

    def held(self) -> bool:
        return True

    async def check(self) -> None:
        return None


@dataclass(frozen=True, slots=True)
class JobInfo:
    """A job as its handler sees it. `emit` relays progress to a caller watching the job live
    (see `Jobs.start`); it does nothing when the job runs unobserved. `lease` is this run's hold
    on the job: every write to the outside goes after `await job.fence()`, and records of what
    was written go through `ctx.storage.set(..., fence=job.lease)`."""

    id: str
    name: str
    payload: dict[str, Any]
    attempt: int
    key: str | None
    emit: Callable[[dict[str, Any]], None] = _no_progress
    lease: Lease = field(default_factory=_Unfenced)

    async def fence(self) -> None:
        """Raise `LeaseLost` (stopping the run) unless this run still holds the job's lease."""
        await self.lease.check()


@dataclass(frozen=True, slots=True)
class JobStatus:
    """A job of this endpoint as seen from outside: state is queued, running, done or dead."""

    id: str
    name: str
    state: str
    attempts: int
    result: dict[str, Any] | None
    error: str | None
    created_at: float
    updated_at: float


class JobRun(Protocol):
    """A job started with `Jobs.start`."""

    id: str
    local: bool

    def events(self) -> AsyncIterator[dict[str, Any]]:
        """The handler's progress events while it runs in this process; ends with the run."""
        ...

    async def wait(self, *, timeout: float, poll: float = 0.2) -> Any:
        """Wait until the job is done or dead (None after `timeout`)."""
        ...


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
    ) -> Answer:
        """The whole answer (streamed from Dify and assembled)."""
        ...

    async def reset(self, conversation_key: str, *, user: str | None = None, app: str | None = None) -> None:
        """Forget the key's conversation of `user` (every user's when None): the next message starts anew."""
        ...


class Context(Protocol):
    """Everything a handler may use. Reaching an undeclared permission raises `PermissionDenied`."""

    @property
    def endpoint(self) -> EndpointInfo: ...
    @property
    def settings(self) -> Any:
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
    @property
    def callbacks(self) -> Callbacks:
        """Needs the HTTP permission."""
        ...

    @property
    def logger(self) -> logging.LoggerAdapter[logging.Logger]: ...
    @property
    def clock(self) -> Clock: ...


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


Handler = Callable[[Request, Context], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class ActionResult:
    """What an action found, for people and for programs.

    `text` is printed as is; `--json` prints `data` (or, when `events` is set, each event as one
    JSON object per line); `ok=False` is a failure: the CLI exits 1.
    """

    text: str
    data: Any
    ok: bool = True
    events: Sequence[Mapping[str, Any]] | None = None


ActionHandler = Callable[[Context, Mapping[str, str]], Awaitable["str | dict[str, Any] | ActionResult"]]


@dataclass(frozen=True, slots=True)
class Action:
    """An operator action of a plugin (see `Plugin.action`)."""

    name: str
    handler: ActionHandler
    help: str
    options: Mapping[str, str]
    flags: Mapping[str, str] = field(default_factory=dict)


Verifier = Callable[[Request, Context], Awaitable[Verdict]]
JobHandler = Callable[[JobInfo, Context], Awaitable[Any]]


async def unverified(request: Request, ctx: Context) -> Verdict:
    """The verifier of a plugin that deliberately checks nothing (it must say so explicitly)."""
    return Verdict.skipped()


# -- routes --------------------------------------------------------------------------------------

_PARAM = re.compile(r"\{([a-zA-Z_][a-zA-Z0-9_]*)(:path)?\}")


def _compile(pattern: str) -> re.Pattern[str]:
    if not pattern.startswith("/"):
        raise ValueError(f"route pattern {pattern!r} must start with '/'")
    out, pos = [], 0
    for match in _PARAM.finditer(pattern):
        out.append(re.escape(pattern[pos : match.start()]))
        out.append(f"(?P<{match.group(1)}>.*)" if match.group(2) else f"(?P<{match.group(1)}>[^/]+)")
        pos = match.end()
    out.append(re.escape(pattern[pos:]))
    return re.compile("".join(out) + r"\Z")


@dataclass(frozen=True, slots=True)
class Route:
    """A handler for some methods on a path pattern below the endpoint URL.

    Patterns use `{name}` for one segment and `{name:path}` for the rest of the path. With
    `verify=False` the plugin's verifier is not run (e.g. a route that checks its own bearer key).
    """

    pattern: str
    methods: frozenset[str]
    handler: Handler
    verify: bool = True
    regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "regex", _compile(self.pattern))

    def match(self, path: str) -> dict[str, str] | None:
        found = self.regex.match(path)
        return None if found is None else found.groupdict()


class Plugin:
    """An endpoint plugin: the value registered under the `dify_gateway.plugins` entry-point group.

    Args:
        name: the plugin's name (`--plugin NAME`).
        settings: pydantic model of the endpoint settings; `SecretStr` fields are secrets.
        verifier: checks every request (before the handler) unless a route opts out.
        permissions: what the context may reach.
        min_apps / max_apps: how many Dify apps an endpoint binds.
        generated: settings the gateway creates when not given: `factory() -> (shown once, stored)`.
        url_hint: a line shown with the endpoint URL, `{url}` replaced (e.g. "base URL: {url}/v1").
    """

    def __init__(
        self,
        name: str,
        *,
        settings: type[BaseModel],
        verifier: Verifier,
        permissions: Iterable[Permission] = (),
        description: str = "",
        min_apps: int = 0,
        max_apps: int | None = None,
        generated: Mapping[str, Callable[[], tuple[str, Any]]] | None = None,
        url_hint: str | None = None,
    ) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9_-]{0,39}", name):
            raise ValueError(f"plugin name {name!r} must be lower-case letters, digits, '-' or '_'")
        self.name = name
        self.settings_model = settings
        self.verifier = verifier
        self.permissions = frozenset(Permission(p) for p in permissions)
        self.description = description
        self.min_apps = min_apps
        self.max_apps = max_apps
        # Settings the gateway makes at creation when not given: factory() -> (shown once, stored).
        self.generated = dict(generated or {})
        self.actions: dict[str, Action] = {}
        self.url_hint = url_hint
        self.routes: list[Route] = []
        self.jobs: dict[str, JobHandler] = {}
        # Payload fields of each job encrypted at rest (tokens, reply URLs), opened only to run it.
        self.job_secrets: dict[str, frozenset[str]] = {}

    def route(
        self, pattern: str, *, methods: Iterable[str] = ("POST",), verify: bool = True
    ) -> Callable[[Handler], Handler]:
        """Decorator: handle `methods` on `pattern`."""
        wanted = frozenset(m.upper() for m in methods)
        unknown = wanted - set(ALL_METHODS)
        if unknown:
            raise ValueError(f"unknown HTTP methods {sorted(unknown)}")

        def register(handler: Handler) -> Handler:
            self.routes.append(Route(pattern, wanted, handler, verify))
            return handler

        return register

    def job(self, name: str, *, secrets: Collection[str] = ()) -> Callable[[JobHandler], JobHandler]:
        """Decorator: the handler of jobs enqueued as `ctx.jobs.enqueue(name, ...)`.

        `secrets` names top-level payload fields holding credentials (an interaction token, a
        reply URL): they are stored encrypted, bound to the job, and decrypted only to run it.
        """
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
            raise ValueError(f"job name {name!r} must be letters, digits, '_', '.' or '-'")
        if isinstance(secrets, str):
            raise TypeError("secrets is a collection of field names, not one string")

        def register(handler: JobHandler) -> JobHandler:
            self.jobs[name] = handler
            self.job_secrets[name] = frozenset(secrets)
            return handler

        return register

    def action(
        self,
        name: str,
        *,
        help: str = "",
        options: Mapping[str, str] | None = None,
        flags: Mapping[str, str] | None = None,
    ) -> Callable[[ActionHandler], ActionHandler]:
        """Decorator: an operator action on one endpoint, e.g. printing a manifest or adding a key.

        It is run as `dify-gateway <plugin> <name> ENDPOINT [--option value ...] [--flag]` and as
        `POST /admin/api/endpoints/{id}/actions/{name}` with `{"args": {...}}`. `options` and
        `flags` map names to their help; a flag's argument is "true" when given ("false" or absent
        otherwise). The handler returns text (printed as is), a JSON object, or an `ActionResult`.
        """
        if not re.fullmatch(r"[a-z][a-z0-9-]{0,39}", name):
            raise ValueError(f"action name {name!r} must be lower-case letters, digits or '-'")

        def register(handler: ActionHandler) -> ActionHandler:
            self.actions[name] = Action(name, handler, help, dict(options or {}), dict(flags or {}))
            return handler

        return register

    def match(self, method: str, path: str) -> tuple[Route | None, dict[str, str], frozenset[str]]:
        """(route, path parameters, methods allowed on the path); the route is None when none takes `method`."""
        allowed: set[str] = set()
        for route in self.routes:
            params = route.match(path)
            if params is None:
                continue
            if method in route.methods or (method == "HEAD" and "GET" in route.methods):
                return route, params, frozenset()
            allowed |= route.methods
        return None, {}, frozenset(allowed)

    def secret_fields(self) -> frozenset[str]:
        """Names of settings typed as `SecretStr` (optional or not): encrypted at rest, masked on read."""
        return _secret_fields(self.settings_model)

    def __repr__(self) -> str:
        return f"Plugin({self.name!r})"


def _secret_fields(model: type[BaseModel]) -> frozenset[str]:
    from pydantic import SecretStr

    names = set()
    for name, info in model.model_fields.items():
        annotation = info.annotation
        args = getattr(annotation, "__args__", ())
        if annotation is SecretStr or SecretStr in args:
            names.add(name)
    return frozenset(names)
