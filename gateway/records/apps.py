"""Dify apps registered with the gateway: a name, an API base URL, an app key (secret) and a mode.

A record also keeps what the app's `GET /parameters` says about its input form, output
moderation and the files it accepts (`gateway.records.appform`), read when the app is added with mode
detection, checked or given a new key, so requests need no extra call. Records that don't know
it yet (added with an explicit mode while Dify was out of reach, or before this was kept) read
it on first need (`described`).

Names are unique within a workspace (`gateway.records.workspaces`): two teams may both have a
`support` app. An app of the workspace `default` is stored under its name, as before workspaces
existed; another workspace's under `workspace/name` (`app_key`), which no name can spell.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from gateway.clock import Clock
from gateway.exceptions import BadRequest, Conflict, NotFound, UpstreamError, ValidationFailed
from gateway.records.appform import FileUpload, InputField, file_upload, output_moderation, parse_form
from gateway.records.cache import ReadCache
from gateway.records.workspaces import DEFAULT_WORKSPACE, WorkspaceService
from gateway.security.crypto import MASK, SecretBox
from gateway.security.upstreams import UpstreamGuard
from gateway.storage.base import Store

__all__ = [
    "APP_MODES",
    "DEFAULT_BASE_URL",
    "AppIn",
    "AppRecord",
    "AppService",
    "AppUpdate",
    "InfoFetcher",
    "ParametersFetcher",
    "app_key",
]

logger = logging.getLogger(__name__)

APP_MODES = ("chat", "agent-chat", "agent", "advanced-chat", "completion", "workflow")
DEFAULT_BASE_URL = "https://api.dify.ai/v1"
SIMULATOR_BASE_URL = "http://127.0.0.1:5001/v1"  # `dify-gateway simulate-dify` with its default port
COLLECTION = "apps"
NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,62}$"
# Like endpoint resolution: this process sees its own changes at once, other processes' within this.
CACHE_SECONDS = 1.0
MAX_KEY_GRACE = 366 * 24 * 3600.0  # like an endpoint URL's rotation grace
# After `GET /parameters` failed, a record that lacks it is not asked for it again for this long.
PARAMETERS_RETRY_SECONDS = 60.0

# (name, base_url, api_key, guarded) -> the app's `GET /info` answer; raises UpstreamError when the
# key fails. `guarded`: a workspace token set base_url, so connect through the upstream guard.
InfoFetcher = Callable[[str, str, str, bool], Awaitable[dict[str, Any]]]
# (name, base_url, api_key, guarded) -> the app's `GET /parameters` answer; raises UpstreamError on failure.
ParametersFetcher = Callable[[str, str, str, bool], Awaitable[dict[str, Any]]]


# The current key is never sent to a host it was not given for (a changed base URL may be anyone's).
MOVED_WITHOUT_KEY = "a new base_url needs the app's api_key too: the current key is not sent to another host"


def app_key(workspace: str, name: str) -> str:
    """The store key of the app `name` of `workspace`."""
    return name if workspace == DEFAULT_WORKSPACE else f"{workspace}/{name}"


def _check_base_url(value: str) -> str:
    value = value.strip().rstrip("/")
    if not value.startswith(("http://", "https://")) or "://" not in value or len(value) > 2048:
        raise ValueError("must be an http(s) URL such as https://api.dify.ai/v1")
    return value


def _check_mode(value: str | None) -> str | None:
    if value is not None and value not in APP_MODES:
        raise ValueError(f"must be one of {', '.join(APP_MODES)}")
    return value


class AppIn(BaseModel):
    """An app as registered through the admin API or the CLI."""

    model_config = ConfigDict(strict=True)  # admin input: no coercion (issue 11)

    name: str = Field(pattern=NAME_PATTERN, description="Short name, e.g. 'support'")
    base_url: str = Field(default=DEFAULT_BASE_URL, description="Dify Service API base URL")
    api_key: SecretStr = Field(description="The app's API key (app-...)", min_length=1, max_length=512)
    mode: str | None = Field(default=None, description="Detected from GET /info when omitted")
    fallback: str | None = Field(default=None, description="App asked instead when this one fails before answering")

    _base = field_validator("base_url")(_check_base_url)
    _mode = field_validator("mode")(_check_mode)


class AppUpdate(BaseModel):
    model_config = ConfigDict(strict=True)

    base_url: str | None = None
    api_key: SecretStr | None = Field(default=None, min_length=1, max_length=512)
    mode: str | None = None
    fallback: str | None = Field(default=None, description="Another app's name; '' removes the fallback")

    @field_validator("base_url")
    @classmethod
    def _base(cls, value: str | None) -> str | None:
        return None if value is None else _check_base_url(value)

    _mode = field_validator("mode")(_check_mode)


@dataclass(frozen=True, slots=True)
class AppRecord:
    name: str
    base_url: str
    api_key: str  # ciphertext
    mode: str
    created_at: float
    updated_at: float
    fallback: str | None = None
    inputs: tuple[InputField, ...] | None = None  # the input form; None: not read yet
    output_moderation: bool | None = None  # Dify moderates the output; None: not read yet
    files: FileUpload | None = None  # the files the app accepts; None: not read yet
    workspace: str = "default"  # records kept before workspaces existed read as "default"
    previous_key: str | None = None  # ciphertext of the key `add_key` replaced, tried on a 401 until:
    previous_key_until: float | None = None
    guarded: bool = False  # a workspace token set `base_url`: checked when set, and on every connection

    @property
    def key(self) -> str:
        """The app's store key (also what its key's encryption is bound to)."""
        return app_key(self.workspace, self.name)

    @property
    def described(self) -> bool:
        """Whether the app's `GET /parameters` was read (records kept before files were read count as not)."""
        return self.inputs is not None and self.files is not None

    def to_doc(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "base_url": self.base_url,
            "api_key": self.api_key,
            "mode": self.mode,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "fallback": self.fallback,
            "inputs": None if self.inputs is None else [field.to_doc() for field in self.inputs],
            "output_moderation": self.output_moderation,
            "files": None if self.files is None else self.files.to_doc(),
            "workspace": self.workspace,
            "previous_key": self.previous_key,
            "previous_key_until": self.previous_key_until,
            "guarded": self.guarded,
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> AppRecord:
        values = dict(doc)
        inputs = values.pop("inputs", None)
        files = values.pop("files", None)
        return cls(
            **values,
            inputs=None if inputs is None else tuple(InputField.from_doc(i) for i in inputs),
            files=None if files is None else FileUpload.from_doc(files),
        )


class AppService:
    """Registers, reads and checks apps. The key is encrypted at rest and never read back in clear."""

    def __init__(
        self,
        store: Store,
        box: SecretBox,
        clock: Clock,
        fetch_info: InfoFetcher,
        fetch_parameters: ParametersFetcher | None = None,
        *,
        workspaces: WorkspaceService,
        upstreams: UpstreamGuard,
    ) -> None:
        self._store = store
        self._upstreams = upstreams  # checks the base URLs workspace tokens set
        self._workspaces = workspaces  # a workspace being deleted gets no new app
        self._box = box
        self._clock = clock
        self._fetch_info = fetch_info
        self._fetch_parameters = fetch_parameters
        self._cache: ReadCache[str, AppRecord | None] = ReadCache(clock, ttl=CACHE_SECONDS, size=1000)
        self._keys: dict[str, str] = {}
        self._parameters_failed: dict[str, float] = {}  # app name -> monotonic time of the failure

    async def add(self, app: AppIn, *, workspace: str = DEFAULT_WORKSPACE, guarded: bool = False) -> AppRecord:
        """Register an app in `workspace`. Without a mode, `GET /info` detects it and `GET /parameters`
        is read too; with one, Dify is not called (the form is read on first need).

        `guarded`: a workspace token (not the operator) registers it, so its base URL must pass the
        upstream guard (`gateway.security.upstreams`), now and on every connection."""
        key = app.api_key.get_secret_value().strip()
        if guarded:
            await self._upstreams.check(app.base_url, "the app's base_url")
        mode = app.mode or await self._detect_mode(app.name, app.base_url, key, guarded)
        now = self._clock.time()
        if app.fallback is not None:
            await self._check_fallback(app.name, app.fallback, workspace)
        store_key = app_key(workspace, app.name)
        record = AppRecord(
            app.name,
            app.base_url,
            self._encrypt(store_key, key),
            mode,
            now,
            now,
            app.fallback,
            workspace=workspace,
            guarded=guarded,
        )
        if app.mode is None:
            record = await self._with_parameters(record, key, strict=False)
        async with self._workspaces.in_use(workspace):
            if not await self._store.doc_create(COLLECTION, store_key, record.to_doc()):
                raise Conflict(f"an app named {app.name!r} already exists")
        return record

    async def update(
        self, name: str, change: AppUpdate, *, workspace: str = DEFAULT_WORKSPACE, guarded: bool = False
    ) -> AppRecord:
        """Change an app. `guarded` (a workspace token's change): a new base URL must pass the upstream
        guard and stays guarded; the operator's new base URL is trusted as it is."""
        record = await self.get(name, workspace=workspace)
        base_url = change.base_url or record.base_url
        url_guarded = record.guarded
        if base_url != record.base_url:  # whoever sets the URL decides whether it is guarded
            if guarded:
                await self._upstreams.check(base_url, "the app's base_url")
            if change.api_key is None:
                raise ValidationFailed(MOVED_WITHOUT_KEY, errors=[{"field": "api_key", "message": MOVED_WITHOUT_KEY}])
            url_guarded = guarded
        key = change.api_key.get_secret_value().strip() if change.api_key else self.api_key(record)
        moved = bool(change.api_key or change.base_url)  # possibly another app: its form is read again
        mode = change.mode or (await self._detect_mode(name, base_url, key, url_guarded) if moved else record.mode)
        fallback = record.fallback
        if change.fallback is not None:
            fallback = change.fallback or None
            if fallback:
                await self._check_fallback(name, fallback, workspace)
        updated = replace(
            record,
            base_url=base_url,
            api_key=self._encrypt(record.key, key),
            mode=mode,
            updated_at=self._clock.time(),
            fallback=fallback,
            previous_key=None if moved else record.previous_key,  # a key given outright ends a rotation
            previous_key_until=None if moved else record.previous_key_until,
            inputs=None if moved else record.inputs,
            output_moderation=None if moved else record.output_moderation,
            files=None if moved else record.files,
            guarded=url_guarded,
        )
        if moved and not change.mode:
            updated = await self._with_parameters(updated, key, strict=False)
        await self._store.doc_put(COLLECTION, record.key, updated.to_doc())
        self._cache.clear()
        self._parameters_failed.pop(record.key, None)
        return updated

    async def get(self, name: str, *, workspace: str = DEFAULT_WORKSPACE) -> AppRecord:
        """The app `name` of `workspace` (another workspace's app of that name is not found)."""
        doc = await self._store.doc_get(COLLECTION, app_key(workspace, name))
        if doc is None:
            raise NotFound(f"no app named {name!r}")
        return AppRecord.from_doc(doc)

    async def cached(self, name: str, *, workspace: str = DEFAULT_WORKSPACE) -> AppRecord | None:
        """The app as read at most `CACHE_SECONDS` ago (the request path); None if it doesn't exist."""
        key = app_key(workspace, name)
        return await self._cache.get(key, functools.partial(self._read, key))

    async def _read(self, key: str) -> AppRecord | None:
        doc = await self._store.doc_get(COLLECTION, key)
        return AppRecord.from_doc(doc) if doc else None

    async def _check_fallback(self, name: str, fallback: str, workspace: str) -> None:
        if fallback == name:
            raise BadRequest("an app can't be its own fallback")
        if await self._store.doc_get(COLLECTION, app_key(workspace, fallback)) is None:
            raise BadRequest(f"the fallback app {fallback!r} does not exist")

    async def all(self, workspace: str | None = None) -> list[AppRecord]:
        """The apps of `workspace` (None: of every workspace)."""
        records = [AppRecord.from_doc(doc) for doc in await self._store.doc_list(COLLECTION)]
        return [r for r in records if workspace in (None, r.workspace)]

    async def remove(self, name: str, *, bound_to: list[str], workspace: str = DEFAULT_WORKSPACE) -> None:
        """Delete the app unless endpoints (`bound_to`, their ids) still use it."""
        record = await self.get(name, workspace=workspace)
        if bound_to:
            raise Conflict(f"app {name!r} is used by endpoints {', '.join(bound_to)}; delete or rebind them first")
        dependants = [a.name for a in await self.all(workspace) if a.fallback == name]
        if dependants:
            raise Conflict(f"app {name!r} is the fallback of {', '.join(dependants)}; change them first")
        await self._store.doc_delete(COLLECTION, record.key)
        self._cache.clear()

    async def check(self, name: str, *, workspace: str = DEFAULT_WORKSPACE) -> dict[str, Any]:
        """Call the app's `GET /info` with its key: proves the key works. Returns the info.

        Also reads `GET /parameters` again and keeps the input form, moderation flag and file
        settings (run it after changing the app's inputs, moderation or file upload in Dify)."""
        record = await self.get(name, workspace=workspace)
        key = self.api_key(record)
        info = await self._info(record.name, record.base_url, key, record.guarded)
        if self._fetch_parameters is not None:
            await self._store_parameters(await self._with_parameters(record, key, strict=True))
        return info

    async def described(self, record: AppRecord) -> AppRecord:
        """`record` with its input form, moderation flag and file settings, read from Dify now if it lacks them.

        A failed read is logged and leaves the record as it is (asked again after
        `PARAMETERS_RETRY_SECONDS`): the request goes on, and Dify says what is missing."""
        if record.described or self._fetch_parameters is None:
            return record
        failed_at = self._parameters_failed.get(record.key)
        if failed_at is not None and self._clock.monotonic() - failed_at < PARAMETERS_RETRY_SECONDS:
            return record
        described = await self._with_parameters(record, self.api_key(record), strict=False)
        if described.described:
            await self._store_parameters(described)
        else:
            self._parameters_failed[record.key] = self._clock.monotonic()
        return described

    async def add_key(self, name: str, key: str, *, grace: float, workspace: str = DEFAULT_WORKSPACE) -> AppRecord:
        """Make `key` the app's key once a real request (`GET /info`) shows it opens the same app;
        the key it replaces stays as a fallback on 401 for `grace` seconds (or until `retire_key`)."""
        if not (math.isfinite(grace) and 0 <= grace <= MAX_KEY_GRACE):
            raise BadRequest(f"the grace period must be 0 to {MAX_KEY_GRACE:.0f} seconds")
        record = await self.get(name, workspace=workspace)
        key = key.strip()
        if not key or len(key) > 512:
            raise BadRequest("the key must be 1 to 512 characters")
        info = await self._info(name, record.base_url, key, record.guarded)  # a key Dify refuses ends here
        if info.get("mode") not in (None, record.mode):
            raise BadRequest(f"the new key opens a {info.get('mode')!r} app, not app {name!r} ({record.mode})")
        try:
            old = await self._info(name, record.base_url, self.api_key(record), record.guarded)
        except UpstreamError:
            old = {}  # the old key no longer works (revoked after a leak): nothing to compare with
        if old.get("name") and info.get("name") != old["name"]:
            raise BadRequest(f"the new key opens Dify app {info.get('name')!r}, not {old['name']!r}")
        now = self._clock.time()
        updated = replace(
            record,
            api_key=self._encrypt(record.key, key),
            previous_key=record.api_key,
            previous_key_until=now + grace,
            updated_at=max(now, record.updated_at + 1e-6),
        )
        await self._store.doc_put(COLLECTION, record.key, updated.to_doc())
        self._cache.clear()
        return updated

    async def retire_key(self, name: str, *, workspace: str = DEFAULT_WORKSPACE) -> AppRecord:
        """Stop using the key `add_key` replaced (before its grace ends)."""
        record = await self.get(name, workspace=workspace)
        updated = replace(record, previous_key=None, previous_key_until=None, updated_at=self._clock.time())
        await self._store.doc_put(COLLECTION, record.key, updated.to_doc())
        self._cache.clear()
        return updated

    def previous_key(self, record: AppRecord) -> str | None:
        """The decrypted key `add_key` replaced while its grace lasts, else None."""
        if record.previous_key is None or (record.previous_key_until or 0) <= self._clock.time():
            return None
        return self._box.decrypt(record.previous_key, context=f"app:{record.key}")

    async def reseal(self, name: str, *, workspace: str = DEFAULT_WORKSPACE) -> bool:
        """Re-encrypt the app's keys under the newest secret key; True when they changed."""
        record = await self.get(name, workspace=workspace)
        context = f"app:{record.key}"
        previous = record.previous_key
        if previous is not None and self._box.needs_rotation(previous):
            previous = self._box.reencrypt(previous, context=context)
        if not self._box.needs_rotation(record.api_key) and previous == record.previous_key:
            return False
        resealed = replace(record, api_key=self._box.reencrypt(record.api_key, context=context), previous_key=previous)
        await self._store.doc_put(COLLECTION, record.key, resealed.to_doc())
        self._cache.clear()
        return True

    def api_key(self, record: AppRecord) -> str:
        """The decrypted key (cached per ciphertext: decrypting on every reverse call is waste)."""
        key = self._keys.get(record.api_key)
        if key is None:
            key = self._box.decrypt(record.api_key, context=f"app:{record.key}")
            if len(self._keys) > 1000:
                self._keys.clear()
            self._keys[record.api_key] = key
        return key

    @staticmethod
    def public(record: AppRecord) -> dict[str, Any]:
        """The record as shown to operators: the key masked without revealing its length."""
        return {
            "name": record.name,
            "workspace": record.workspace,
            "base_url": record.base_url,
            "api_key": MASK,
            "mode": record.mode,
            "fallback": record.fallback,
            "inputs": None if record.inputs is None else [field.to_doc() for field in record.inputs],
            "output_moderation": record.output_moderation,
            "files": None if record.files is None else record.files.to_doc(),
            "previous_key": None if record.previous_key is None else MASK,
            "previous_key_until": record.previous_key_until,
            "created_at": record.created_at,
            "updated_at": record.updated_at,
        }

    def _encrypt(self, store_key: str, key: str) -> str:
        return self._box.encrypt(key, context=f"app:{store_key}")

    async def _info(self, name: str, base_url: str, key: str, guarded: bool) -> dict[str, Any]:
        """`GET /info`; an answer that is not a JSON object (say, the console's HTML) is an upstream error."""
        try:
            info = await self._fetch_info(name, base_url, key, guarded)
        except ValueError:
            info = None
        except UpstreamError as exc:
            if exc.upstream_status is not None:  # Dify answered (a bad key, say): its own message says it
                raise
            # Nothing answered: say where we looked and how to try the gateway without Dify.
            raise UpstreamError(
                f"{exc.message}: tried GET {_without_userinfo(base_url)}/info. Is Dify running there? "
                f"To try the gateway without Dify, run `dify-gateway simulate-dify` and use "
                f"--base-url {SIMULATOR_BASE_URL} --key app-simulator",
                retryable=exc.retryable,
                app=name,
            ) from None
        if not isinstance(info, dict):
            raise UpstreamError(f"the Dify API at {base_url} did not answer GET /info with a JSON object")
        return info

    async def _with_parameters(self, record: AppRecord, key: str, *, strict: bool) -> AppRecord:
        """`record` with what `GET /parameters` says; unchanged when it fails and not `strict`."""
        if self._fetch_parameters is None:
            return record
        try:
            try:
                body = await self._fetch_parameters(record.name, record.base_url, key, record.guarded)
            except ValueError:
                body = None
            if not isinstance(body, dict):
                raise UpstreamError(
                    f"the Dify API at {record.base_url} did not answer GET /parameters with a JSON object"
                )
        except UpstreamError as exc:
            if strict:
                raise
            logger.warning("could not read the input form of app %r: %s", record.name, exc.message)
            return record
        return replace(
            record,
            inputs=parse_form(body.get("user_input_form")),
            output_moderation=output_moderation(body.get("sensitive_word_avoidance")),
            files=file_upload(body),
        )

    async def _store_parameters(self, described: AppRecord) -> None:
        """Keep a record's form, unless the app was changed meanwhile (its key or URL: another app)."""
        current = await self._store.doc_get(COLLECTION, described.key)
        if current is None or (current["api_key"], current["base_url"]) != (described.api_key, described.base_url):
            return
        kept = described.to_doc()
        doc = {**current, **{name: kept[name] for name in ("inputs", "output_moderation", "files")}}
        await self._store.doc_put(COLLECTION, described.key, doc)
        self._cache.clear()
        self._parameters_failed.pop(described.key, None)

    async def _detect_mode(self, name: str, base_url: str, key: str, guarded: bool) -> str:
        info = await self._info(name, base_url, key, guarded)
        mode = info.get("mode")
        if mode not in APP_MODES:
            raise BadRequest(f"the app reported an unknown mode {mode!r}; pass the mode explicitly")
        return str(mode)


def _without_userinfo(url: str) -> str:
    """`url` without `user:password@`, for messages."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=host)).rstrip("/")
