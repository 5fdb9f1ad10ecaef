"""Endpoints: a plugin bound to apps, reached at `{public_url}/e/{token}`.

The URL token is minted from a CSPRNG and signed (`EndpointTokens`), so a forged token is turned
away without touching the store. The store indexes tokens by their SHA-256 digest (a leaked
database does not leak live URLs) and keeps the current token encrypted so operators can see the
URL again. Rotation mints a new token; the old one keeps working for a grace period.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Concatenate, ParamSpec, TypeVar

from pydantic import BaseModel, SecretStr, ValidationError

from gateway.clock import Clock
from gateway.exceptions import BadRequest, Conflict, LockBusy, NotFound, ValidationFailed
from gateway.host.registry import PluginRegistry
from gateway.plugin import JobError, Plugin
from gateway.records.appform import INPUT_MODES, binding_problem
from gateway.records.apps import COLLECTION as APPS, AppRecord, AppService, app_key
from gateway.records.cache import ReadCache
from gateway.records.workspaces import DEFAULT_WORKSPACE, WorkspaceService
from gateway.security.crypto import MASK, SecretBox
from gateway.security.tokens import EndpointTokens
from gateway.security.upstreams import UpstreamGuard, is_http_url
from gateway.storage.base import Store
from gateway.storage.lock import LeaseLock

__all__ = [
    "MAX_ROTATION_GRACE",
    "EndpointOptions",
    "EndpointRecord",
    "EndpointService",
    "PreviousSecret",
    "TokenRef",
    "coerce_setting",
]

COLLECTION = "endpoints"
TOKEN_PREFIX = "tok:"
# The workspace each URL token was made in, kept after the URL is retired or its endpoint deleted:
# a token comes back (apply, restore) only in its own workspace.
TOKEN_OWNER_PREFIX = "tok-ws:"
# How long a process trusts what it resolved a URL token to. Changes made here apply at once;
# changes made by another replica or the CLI reach this process within this many seconds.
RESOLVE_CACHE_SECONDS = 1.0
RESOLVE_CACHE_SIZE = 10_000
CHANGE_LOCK_TTL = 10.0  # a crashed changer holds an endpoint this long at most
CHANGE_LOCK_WAIT = 5.0
# Longest grace a rotation may give the old URL: its expiry must fit a JSON number and a Redis TTL.
MAX_ROTATION_GRACE = 366 * 24 * 3600.0


@dataclass(frozen=True, slots=True)
class TokenRef:
    digest: str
    token: str  # ciphertext of the URL token
    expires_at: float | None = None  # None for the current token


@dataclass(frozen=True, slots=True)
class PreviousSecret:
    """A secret setting's value before `rotate_secret`, still accepted until `expires_at`."""

    setting: str
    value: str  # ciphertext, sealed like the setting itself
    expires_at: float


@dataclass(frozen=True, slots=True)
class EndpointOptions:
    """Per-endpoint operational settings (not the plugin's)."""

    rate_limit_per_minute: int | None = None  # None: the gateway default; 0: unlimited
    log_bodies: bool = False
    max_body_bytes: int | None = None  # None: the gateway default


@dataclass(frozen=True, slots=True)
class EndpointRecord:
    id: str
    plugin: str
    apps: tuple[str, ...]
    settings: dict[str, Any]  # secret fields hold ciphertext
    enabled: bool
    created_at: float
    updated_at: float
    tokens: tuple[TokenRef, ...] = ()
    options: EndpointOptions = field(default_factory=EndpointOptions)
    name: str = ""
    workspace: str = "default"  # records kept before workspaces existed read as "default"
    previous_secrets: tuple[PreviousSecret, ...] = ()
    # A workspace token (not the operator) created it or wrote its settings: their URLs were checked
    # then, and the plugin's `ctx.http` goes through the upstream guard (gateway.security.upstreams).
    guarded: bool = False

    def to_doc(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "plugin": self.plugin,
            "apps": list(self.apps),
            "settings": self.settings,
            "enabled": self.enabled,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "tokens": [{"digest": t.digest, "token": t.token, "expires_at": t.expires_at} for t in self.tokens],
            "options": {
                "rate_limit_per_minute": self.options.rate_limit_per_minute,
                "log_bodies": self.options.log_bodies,
                "max_body_bytes": self.options.max_body_bytes,
            },
            "name": self.name,
            "workspace": self.workspace,
            "previous_secrets": [
                {"setting": p.setting, "value": p.value, "expires_at": p.expires_at} for p in self.previous_secrets
            ],
            "guarded": self.guarded,
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> EndpointRecord:
        return cls(
            id=doc["id"],
            plugin=doc["plugin"],
            apps=tuple(doc["apps"]),
            settings=doc["settings"],
            enabled=doc["enabled"],
            created_at=doc["created_at"],
            updated_at=doc["updated_at"],
            tokens=tuple(TokenRef(**t) for t in doc.get("tokens", ())),
            options=EndpointOptions(**doc.get("options", {})),
            name=doc.get("name", ""),
            workspace=doc.get("workspace", "default"),
            previous_secrets=tuple(PreviousSecret(**p) for p in doc.get("previous_secrets", ())),
            guarded=doc.get("guarded", False),
        )

    @property
    def current(self) -> TokenRef:
        return next(t for t in self.tokens if t.expires_at is None)


_Service = TypeVar("_Service", bound="EndpointService")
_P = ParamSpec("_P")
_R = TypeVar("_R")


def _one_change_at_a_time(
    method: Callable[Concatenate[_Service, str, _P], Awaitable[_R]],
) -> Callable[Concatenate[_Service, str, _P], Awaitable[_R]]:
    """Serialise the read-modify-write of one endpoint across processes (a rotate racing an update
    must not lose the new URL)."""

    @functools.wraps(method)
    async def locked(self: _Service, endpoint_id: str, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        async with self._changing(endpoint_id):
            return await method(self, endpoint_id, *args, **kwargs)

    return locked


def _urls(model: BaseModel) -> dict[str, str]:
    """The settings of `model` that hold an http(s) URL (an API base URL, say), by name."""
    values = {name: getattr(model, name) for name in type(model).model_fields}
    return {name: value for name, value in values.items() if is_http_url(value)}


def coerce_setting(model: type[BaseModel], name: str, raw: str) -> Any:
    """Turn a `key=value` string from the command line into a value for `model.name`.

    Strings stay strings; other fields accept JSON (`--set channels='["a","b"]'`, `--set n=3`).
    """
    info = model.model_fields.get(name)
    if info is None:
        return raw
    annotation = info.annotation
    if (
        annotation in (str, SecretStr)
        or str in getattr(annotation, "__args__", ())
        or SecretStr in getattr(annotation, "__args__", ())
    ):
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _json_text(values: dict[str, Any]) -> str:
    try:
        return json.dumps(values)
    except (TypeError, ValueError):  # not JSON at all (only a Python caller can send that)
        raise ValidationFailed("settings must be JSON values") from None


def _plain_settings(model: BaseModel, plugin: Plugin) -> dict[str, Any]:
    """`model` as JSON values with its secrets revealed, to merge changes into and validate again."""
    plain: dict[str, Any] = model.model_dump(mode="json")
    for name in plugin.secret_fields():
        value = getattr(model, name)
        if isinstance(value, SecretStr):
            plain[name] = value.get_secret_value()
    return plain


def _refuse_mask(model: BaseModel, plugin: Plugin) -> None:
    """Someone sent back what a read showed them: a secret must be left out to stay unchanged."""
    for name in plugin.secret_fields():
        value = getattr(model, name)
        if isinstance(value, SecretStr) and value.get_secret_value() == MASK:
            raise ValidationFailed(
                f"setting {name!r} is the mask, not a secret; leave it out to keep the current value",
                errors=[{"field": name, "message": "the mask is not a secret"}],
            )


class EndpointService:
    """Mints, reads, changes and resolves endpoints."""

    def __init__(
        self,
        store: Store,
        registry: PluginRegistry,
        box: SecretBox,
        tokens: EndpointTokens,
        clock: Clock,
        *,
        public_url: str,
        rotation_grace: float,
        workspaces: WorkspaceService,
        upstreams: UpstreamGuard,
        apps: AppService | None = None,
    ) -> None:
        self._store = store
        self._registry = registry
        self._box = box
        self._tokens = tokens
        self._clock = clock
        self._public_url = public_url.rstrip("/")
        self._grace = rotation_grace
        self._apps = apps  # reads the input form of apps whose records lack it
        self._workspaces = workspaces  # a workspace being deleted gets no new endpoint
        self._upstreams = upstreams  # checks the URLs in settings that workspace tokens write
        self._settings_cache: dict[tuple[str, float], BaseModel] = {}
        self._resolved: ReadCache[str, EndpointRecord | None] = ReadCache(
            clock, ttl=RESOLVE_CACHE_SECONDS, size=RESOLVE_CACHE_SIZE
        )
        self._by_id: ReadCache[str, EndpointRecord | None] = ReadCache(
            clock, ttl=RESOLVE_CACHE_SECONDS, size=RESOLVE_CACHE_SIZE
        )  # the endpoints jobs work for
        self._urls: dict[str, str] = {}

    # -- reading ----------------------------------------------------------------------------------

    async def get(self, endpoint_id: str, *, workspace: str | None = None) -> EndpointRecord:
        """The endpoint; with `workspace`, another workspace's endpoint is not found (its existence
        is not revealed)."""
        record = await self._read(endpoint_id)
        if record is None or workspace not in (None, record.workspace):
            raise NotFound(f"no endpoint {endpoint_id!r}")
        return record

    async def of_job(self, endpoint_id: str | None, *, enabled: bool) -> tuple[EndpointRecord, Plugin]:
        """The endpoint (and its plugin) a job works for; `JobError` (the job stops for good) when it
        is gone, its plugin is not installed, or (`enabled=True`) it is disabled.

        Read as the request path reads it (`ReadCache`, `RESOLVE_CACHE_SECONDS`): the jobs of a
        burst share one decoded record (and so one plugin context); a change made here applies at
        once, another replica's within that bound, as for requests."""
        record = await self._by_id.get(endpoint_id, functools.partial(self._read, endpoint_id)) if endpoint_id else None
        if record is None or (enabled and not record.enabled):
            raise JobError(f"endpoint {endpoint_id} is gone{' or disabled' if enabled else ''}")
        plugin = self._registry.get(record.plugin)
        if plugin is None:
            raise JobError(f"plugin {record.plugin!r} is not installed")
        return record, plugin

    async def _read(self, endpoint_id: str) -> EndpointRecord | None:
        doc = await self._store.doc_get(COLLECTION, endpoint_id)
        return None if doc is None else EndpointRecord.from_doc(doc)

    async def all(self, workspace: str | None = None) -> list[EndpointRecord]:
        """The endpoints of `workspace` (None: of every workspace)."""
        records = [EndpointRecord.from_doc(doc) for doc in await self._store.doc_list(COLLECTION)]
        return [r for r in records if workspace in (None, r.workspace)]

    async def resolve(self, token: str) -> EndpointRecord | None:
        """The enabled endpoint a URL token opens, or None.

        Forged tokens cost no store lookup; answers (misses included) are cached for
        `RESOLVE_CACHE_SECONDS`, so a flood of requests costs one lookup a second per token (requests
        arriving while it runs share it: gateway/records/cache.py).
        """
        digest = self._tokens.digest(token)
        # Only authentic tokens ever enter the cache, so a known digest needs no signature check.
        if not self._resolved.knows(digest) and not self._tokens.is_authentic(token):
            return None
        record = await self._resolved.get(digest, functools.partial(self._lookup, digest))
        if record is None:
            return None
        wall = self._clock.time()
        for ref in record.tokens:
            if ref.digest == digest and (ref.expires_at is None or ref.expires_at > wall):
                return record
        return None

    async def _lookup(self, digest: str) -> EndpointRecord | None:
        endpoint_id = await self._store.kv_get(TOKEN_PREFIX + digest)
        if endpoint_id is None:
            return None
        record = await self._read(endpoint_id)
        return record if record is not None and record.enabled else None

    def url(self, record: EndpointRecord) -> str:
        """The endpoint's current URL (decrypted once per token, then cached)."""
        ref = record.current
        url = self._urls.get(ref.digest)
        if url is None:
            url = self.url_for(self._box.decrypt(ref.token, context=f"endpoint:{record.id}:token"))
            if len(self._urls) >= RESOLVE_CACHE_SIZE:
                self._urls.clear()
            self._urls[ref.digest] = url
        return url

    def url_for(self, token: str) -> str:
        return f"{self._public_url}/e/{token}"

    def settings(self, record: EndpointRecord, plugin: Plugin) -> BaseModel:
        """The plugin's settings model with secrets decrypted (cached per record version)."""
        key: tuple[str, float] = (record.id, record.updated_at)
        cached = self._settings_cache.get(key)
        if cached is not None:
            return cached
        values = dict(record.settings)
        for name in plugin.secret_fields():
            if isinstance(values.get(name), str):
                values[name] = self._box.decrypt(values[name], context=f"endpoint:{record.id}:{name}")
        model: BaseModel = plugin.settings_model.model_validate(values)
        if len(self._settings_cache) > 1024:
            self._settings_cache.clear()
        self._settings_cache[key] = model
        return model

    def plain_settings(self, record: EndpointRecord, plugin: Plugin) -> dict[str, Any]:
        """The settings as JSON values with the secrets in the clear (for `export`; never shown)."""
        return _plain_settings(self.settings(record, plugin), plugin)

    def public(self, record: EndpointRecord) -> dict[str, Any]:
        """The record as operators see it: URL shown, secret settings masked, nothing decrypted but the URL."""
        plugin = self._registry.get(record.plugin)
        secret = plugin.secret_fields() if plugin else frozenset()
        now = self._clock.time()
        return {
            "id": record.id,
            "name": record.name,
            "plugin": record.plugin,
            "workspace": record.workspace,
            "apps": list(record.apps),
            "url": self.url(record),
            "hint": plugin.url_hint.format(url=self.url(record)) if plugin and plugin.url_hint else None,
            "enabled": record.enabled,
            "settings": {k: (MASK if k in secret and v is not None else v) for k, v in record.settings.items()},
            "previous_urls_expire_at": sorted(
                t.expires_at for t in record.tokens if t.expires_at is not None and t.expires_at > now
            ),
            "previous_secrets_expire_at": {
                p.setting: p.expires_at for p in record.previous_secrets if p.expires_at > now
            },
            "rate_limit_per_minute": record.options.rate_limit_per_minute,
            "log_bodies": record.options.log_bodies,
            "max_body_bytes": record.options.max_body_bytes,
            "created_at": record.created_at,
            "updated_at": record.updated_at,
        }

    # -- changing ---------------------------------------------------------------------------------

    async def create(
        self,
        plugin_name: str,
        apps: list[str],
        settings: dict[str, Any],
        *,
        name: str = "",
        options: EndpointOptions | None = None,
        workspace: str = DEFAULT_WORKSPACE,
    ) -> tuple[EndpointRecord, str]:
        """Mint an endpoint; returns the record and its URL."""
        record, url, _ = await self.create_with_secrets(
            plugin_name, apps, settings, name=name, options=options, workspace=workspace
        )
        return record, url

    async def create_with_secrets(
        self,
        plugin_name: str,
        apps: list[str],
        settings: dict[str, Any],
        *,
        name: str = "",
        options: EndpointOptions | None = None,
        workspace: str = DEFAULT_WORKSPACE,
        endpoint_id: str | None = None,
        token: str | None = None,
        guarded: bool = False,
    ) -> tuple[EndpointRecord, str, dict[str, str]]:
        """Mint an endpoint; returns the record, its URL and the secrets the gateway generated for it
        (the plugin's `generated` settings that were not given), which are shown this once only.

        `endpoint_id` and `token` (a URL token this gateway signed) recreate a known endpoint with
        its id and URL (`dify-gateway apply`, a snapshot's restore); both are minted otherwise.
        `guarded`: a workspace token creates it, so the URLs in its settings must pass the upstream
        guard, now and (through `ctx.http`) on every connection."""
        if token is not None and not self._tokens.is_authentic(token):
            raise BadRequest("the URL token was not signed with this gateway's secret key")
        plugin = self._registry.get(plugin_name)
        if plugin is None:
            raise BadRequest(f"no plugin named {plugin_name!r} is installed ({', '.join(self._registry.names())})")
        await self._check_apps(plugin, apps, workspace)
        shown: dict[str, str] = {}
        settings = dict(settings)
        for field_name, factory in plugin.generated.items():
            if settings.get(field_name) in (None, ""):
                shown[field_name], settings[field_name] = factory()
        model = self._validate(plugin, settings)
        await self._check_inputs(apps, model, workspace)
        if guarded:
            await self._check_upstreams(model, None)
        async with self._workspaces.in_use(workspace):
            record, url = await self._insert(plugin, apps, model, name, options, workspace, endpoint_id, token, guarded)
        return record, url, shown

    async def _insert(
        self,
        plugin: Plugin,
        apps: list[str],
        model: BaseModel,
        name: str,
        options: EndpointOptions | None,
        workspace: str,
        endpoint_id: str | None,
        token: str | None,
        guarded: bool,
    ) -> tuple[EndpointRecord, str]:
        now = self._clock.time()
        for _ in range(1 if endpoint_id else 5):
            new_id = endpoint_id or "ep_" + secrets.token_hex(8)
            new_token = token or self._tokens.mint()
            if token is not None and await self._store.kv_get(TOKEN_PREFIX + self._tokens.digest(token)):
                raise Conflict("another endpoint already has this URL")
            if token is not None and (await self.url_owner(token)) not in (None, workspace):
                raise Conflict("this URL belonged to an endpoint of another workspace")
            record = EndpointRecord(
                id=new_id,
                plugin=plugin.name,
                apps=tuple(apps),
                settings=self._seal(new_id, plugin, model),
                enabled=True,
                created_at=now,
                updated_at=now,
                tokens=(self._token_ref(new_id, new_token),),
                options=options or EndpointOptions(),
                name=name,
                workspace=workspace,
                guarded=guarded,
            )
            if await self._store.doc_create(COLLECTION, new_id, record.to_doc()):
                await self._store.kv_set(TOKEN_PREFIX + record.current.digest, new_id)
                self._forget_reads()  # a job may have asked for this id (a request for this URL) before
                await self._own(record.tokens, workspace)
                return record, self.url_for(new_token)
        if endpoint_id:
            raise Conflict(f"an endpoint {endpoint_id!r} already exists")
        raise RuntimeError("could not allocate an endpoint id")  # pragma: no cover - 64 random bits

    @_one_change_at_a_time
    async def update(
        self,
        endpoint_id: str,
        *,
        settings: dict[str, Any] | None = None,
        unset: list[str] | None = None,
        apps: list[str] | None = None,
        name: str | None = None,
        options: EndpointOptions | None = None,
        guarded: bool = False,
    ) -> EndpointRecord:
        """Change settings (merged: secrets not given stay as they are), apps, name or options.
        `guarded`: a workspace token's change; URLs it puts in the settings must pass the upstream
        guard, and the endpoint is guarded from then on (an operator's change leaves that as it is)."""
        record = await self.get(endpoint_id)
        plugin = self._registry.require(record.plugin)
        changes: dict[str, Any] = {"updated_at": max(self._clock.time(), record.updated_at + 1e-6)}
        model = self.settings(record, plugin)
        if settings is not None or unset:
            plain_before = _plain_settings(model, plugin)
            merged = dict(plain_before)
            for key in unset or ():
                merged.pop(key, None)
            merged.update(settings or {})
            before, model = model, self._validate(plugin, merged)
            if guarded:
                await self._check_upstreams(model, before)
                changes["guarded"] = True
            changes["settings"] = self._seal(record.id, plugin, model)
            # A secret set outright ends its rotation: the values rotated out of it stop at once.
            after = _plain_settings(model, plugin)
            replaced = {name for name in plugin.secret_fields() if after.get(name) != plain_before.get(name)}
            if replaced:
                kept = tuple(p for p in record.previous_secrets if p.setting not in replaced)
                changes["previous_secrets"] = kept
        if apps is not None:
            await self._check_apps(plugin, apps, record.workspace)
            changes["apps"] = tuple(apps)
        if "settings" in changes or apps is not None:
            await self._check_inputs(list(changes.get("apps", record.apps)), model, record.workspace)
        if name is not None:
            changes["name"] = name
        if options is not None:
            changes["options"] = options
        updated = replace(record, **changes)
        await self._save(updated)
        return updated

    @_one_change_at_a_time
    async def set_enabled(self, endpoint_id: str, enabled: bool) -> EndpointRecord:
        record = await self.get(endpoint_id)
        updated = replace(record, enabled=enabled, updated_at=max(self._clock.time(), record.updated_at + 1e-6))
        await self._save(updated)
        return updated

    @_one_change_at_a_time
    async def rotate(self, endpoint_id: str, *, grace: float | None = None) -> tuple[EndpointRecord, str]:
        """Mint a new URL; the current one keeps working for `grace` seconds (default: the setting).

        URLs retired earlier keep their own expiry, but never past `grace` from now.
        """
        grace = self._checked_grace(grace)
        record = await self.get(endpoint_id)
        now = self._clock.time()
        token = self._tokens.mint()
        new = self._token_ref(record.id, token)
        kept: list[TokenRef] = []
        for ref in record.tokens:
            # Grace bounds every older URL too: `--grace 0` after a leak retires them all at once.
            expires = now + grace if ref.expires_at is None else min(ref.expires_at, now + grace)
            if expires > now:
                kept.append(replace(ref, expires_at=expires))
                await self._store.kv_set(TOKEN_PREFIX + ref.digest, record.id, ttl=expires - now)
            else:
                await self._store.kv_delete(TOKEN_PREFIX + ref.digest)
        updated = replace(record, tokens=(*kept, new), updated_at=max(now, record.updated_at + 1e-6))
        await self._own((*record.tokens, new), record.workspace)
        await self._save(updated)
        await self._store.kv_set(TOKEN_PREFIX + new.digest, record.id)
        return updated, self.url_for(token)

    @_one_change_at_a_time
    async def rotate_secret(
        self, endpoint_id: str, *, setting: str | None = None, value: str | None = None, grace: float | None = None
    ) -> tuple[EndpointRecord, str, str | None]:
        """Give a secret setting a new value (`value`, or one the plugin generates); the old one is
        still accepted (`secret_values`) for `grace` seconds. Returns the record, the setting, and
        the generated value to show once (None when `value` was given)."""
        grace = self._checked_grace(grace)
        record = await self.get(endpoint_id)
        plugin = self._registry.require(record.plugin)
        secret = plugin.secret_fields()
        if setting is None:
            candidates = sorted(set(plugin.generated) & secret) or sorted(secret)
            if len(candidates) != 1:
                raise BadRequest(f"name the secret setting to rotate: one of {', '.join(sorted(secret)) or 'none'}")
            setting = candidates[0]
        if setting not in secret:
            raise BadRequest(f"{setting!r} is not a secret setting of plugin {plugin.name!r}")
        shown: str | None = None
        if value is None:
            factory = plugin.generated.get(setting)
            if factory is None:
                raise BadRequest(f"give the new value of {setting!r}: the gateway does not make it")
            shown, value = factory()
        current = self.settings(record, plugin)
        merged = _plain_settings(current, plugin)
        if merged.get(setting) == value:
            raise BadRequest(f"the new {setting} is the current one")
        merged[setting] = value
        model = self._validate(plugin, merged)
        now = self._clock.time()
        kept = [p for p in record.previous_secrets if p.setting != setting and p.expires_at > now]
        old = record.settings.get(setting)
        if isinstance(old, str) and grace > 0:
            kept.append(PreviousSecret(setting, old, now + grace))
        updated = replace(
            record,
            settings=self._seal(record.id, plugin, model),
            previous_secrets=tuple(kept),
            updated_at=max(now, record.updated_at + 1e-6),
        )
        await self._save(updated)
        return updated, setting, shown

    @_one_change_at_a_time
    async def retire_secret(self, endpoint_id: str, *, setting: str | None = None) -> EndpointRecord:
        """Stop accepting the values `rotate_secret` replaced (of `setting`, or of every setting)."""
        record = await self.get(endpoint_id)
        kept = tuple(p for p in record.previous_secrets if setting is not None and p.setting != setting)
        updated = replace(record, previous_secrets=kept, updated_at=max(self._clock.time(), record.updated_at + 1e-6))
        await self._save(updated)
        return updated

    def secret_values(self, record: EndpointRecord, plugin: Plugin, setting: str) -> tuple[str, ...]:
        """The secret setting's current value, then the values rotated out of it still in their grace."""
        current = getattr(self.settings(record, plugin), setting, None)
        values = [current.get_secret_value()] if isinstance(current, SecretStr) else []
        now = self._clock.time()
        for previous in record.previous_secrets:
            if previous.setting == setting and previous.expires_at > now:
                values.append(self._box.decrypt(previous.value, context=f"endpoint:{record.id}:{setting}"))
        return tuple(values)

    def _checked_grace(self, grace: float | None) -> float:
        grace = self._grace if grace is None else grace
        if not (math.isfinite(grace) and grace <= MAX_ROTATION_GRACE):
            raise BadRequest(f"the grace period must be at most {MAX_ROTATION_GRACE:.0f} seconds")
        return max(0.0, grace)

    @_one_change_at_a_time
    async def reseal(self, endpoint_id: str) -> tuple[int, bool]:
        """Re-encrypt the endpoint's secrets under the newest secret key (after adding a key).

        Returns how many values changed, and whether the current URL is signed with an older key
        (then `rotate` it before dropping that key, or the URL stops working).
        """
        record = await self.get(endpoint_id)
        plugin = self._registry.get(record.plugin)
        secret = plugin.secret_fields() if plugin else frozenset()
        settings = dict(record.settings)
        changed = 0
        for name in secret:
            value = settings.get(name)
            if isinstance(value, str) and self._box.needs_rotation(value):
                settings[name] = self._box.reencrypt(value, context=f"endpoint:{record.id}:{name}")
                changed += 1
        previous = []
        for old in record.previous_secrets:
            if self._box.needs_rotation(old.value):
                context = f"endpoint:{record.id}:{old.setting}"
                old = replace(old, value=self._box.reencrypt(old.value, context=context))
                changed += 1
            previous.append(old)
        tokens = []
        for ref in record.tokens:
            if self._box.needs_rotation(ref.token):
                ref = replace(ref, token=self._box.reencrypt(ref.token, context=f"endpoint:{record.id}:token"))
                changed += 1
            tokens.append(ref)
        if changed:
            await self._save(replace(record, settings=settings, tokens=tuple(tokens), previous_secrets=tuple(previous)))
        current = self._box.decrypt(record.current.token, context=f"endpoint:{record.id}:token")
        return changed, not self._tokens.signed_with_newest(current)

    @_one_change_at_a_time
    async def delete(self, endpoint_id: str) -> EndpointRecord:
        record = await self.get(endpoint_id)
        await self._own(record.tokens, record.workspace)
        for ref in record.tokens:
            await self._store.kv_delete(TOKEN_PREFIX + ref.digest)
        await self._store.doc_delete(COLLECTION, record.id)
        self._forget_reads()
        return record

    @contextlib.asynccontextmanager
    async def _changing(self, endpoint_id: str) -> AsyncIterator[None]:
        lock = LeaseLock(self._store, f"eplock:{endpoint_id}", ttl=CHANGE_LOCK_TTL)
        try:
            async with lock.held(self._clock, wait=CHANGE_LOCK_WAIT, poll=0.02):
                yield
        except LockBusy:
            raise Conflict("the endpoint is being changed by someone else; try again") from None

    async def _save(self, record: EndpointRecord) -> None:
        await self._store.doc_put(COLLECTION, record.id, record.to_doc())
        self._forget_reads()

    def _forget_reads(self) -> None:
        """This process sees its own changes at once: what the request and job paths read is dropped."""
        self._resolved.clear()
        self._by_id.clear()

    # -- helpers ----------------------------------------------------------------------------------

    async def url_owner(self, token: str) -> str | None:
        """The workspace URL `token` was made in (None: not known to this gateway's store)."""
        return await self._store.kv_get(TOKEN_OWNER_PREFIX + self._tokens.digest(token))

    async def _own(self, refs: Iterable[TokenRef], workspace: str) -> None:
        for ref in refs:
            await self._store.kv_set(TOKEN_OWNER_PREFIX + ref.digest, workspace)

    def _token_ref(self, endpoint_id: str, token: str) -> TokenRef:
        return TokenRef(self._tokens.digest(token), self._box.encrypt(token, context=f"endpoint:{endpoint_id}:token"))

    async def _check_upstreams(self, model: BaseModel, before: BaseModel | None) -> None:
        """Every http(s) URL in the settings `model` that is new (not in `before`) must pass the
        upstream guard: a workspace token may point a plugin at public addresses only."""
        old = _urls(before) if before is not None else {}
        for setting, url in _urls(model).items():
            if old.get(setting) != url:
                await self._upstreams.check(url, f"setting {setting}")

    async def _check_apps(self, plugin: Plugin, apps: list[str], workspace: str) -> None:
        if len(set(apps)) != len(apps):
            raise BadRequest("an app is bound twice")
        if len(apps) < plugin.min_apps:
            raise BadRequest(f"plugin {plugin.name!r} needs at least {plugin.min_apps} app(s) (--app NAME)")
        if plugin.max_apps is not None and len(apps) > plugin.max_apps:
            raise BadRequest(f"plugin {plugin.name!r} takes at most {plugin.max_apps} app(s)")
        for app in apps:
            if await self._store.doc_get(APPS, app_key(workspace, app)) is None:
                raise BadRequest(f"no app named {app!r}; add it first (dify-gateway apps add)")

    async def _check_inputs(self, apps: list[str], settings: BaseModel, workspace: str) -> None:
        """Refuse Workflow/Completion apps that can't take the user's text (no text input, or none
        named like the `query_input` setting), naming the inputs they have."""
        query_input = getattr(settings, "query_input", None)
        for name in apps:
            doc = await self._store.doc_get(APPS, app_key(workspace, name))
            if doc is None:
                continue
            record = AppRecord.from_doc(doc)
            if self._apps is not None and record.mode in INPUT_MODES:
                record = await self._apps.described(record)
            problem = binding_problem(
                record.name, record.mode, record.inputs, query_input if isinstance(query_input, str) else None
            )
            if problem:
                raise BadRequest(problem)

    def checked_settings(self, plugin_name: str, values: dict[str, Any]) -> dict[str, Any]:
        """`values` as the plugin's settings would store them (defaults filled in, secrets in the
        clear); `ValidationFailed` names each refused field, never echoing a value."""
        plugin = self._registry.require(plugin_name)
        model = self._validate(plugin, values)
        _refuse_mask(model, plugin)
        return _plain_settings(model, plugin)

    def authentic_token(self, token: str) -> bool:
        """Whether `token` is a URL token this gateway signed (and so may be given to `create`)."""
        return self._tokens.is_authentic(token)

    @staticmethod
    def _validate(plugin: Plugin, values: dict[str, Any]) -> BaseModel:
        unknown = sorted(set(values) - set(plugin.settings_model.model_fields))
        if unknown:
            # A typo (`greting=hi`) would otherwise be dropped silently.
            raise ValidationFailed(
                f"unknown settings for plugin {plugin.name!r}: {', '.join(unknown)}",
                errors=[{"field": name, "message": "unknown setting"} for name in unknown],
            )
        try:
            # Strict, as JSON: settings are admin input (issue 11), so `false` is not a number of
            # seconds and `0` is not a boolean, while JSON arrays and strings fill tuples and enums.
            model: BaseModel = plugin.settings_model.model_validate_json(_json_text(values), strict=True)
            return model
        except ValidationError as exc:
            # Never echo the input: a rejected value may be a secret.
            errors: list[dict[str, object]] = [
                {"field": ".".join(str(p) for p in err["loc"]), "message": err["msg"]} for err in exc.errors()
            ]
            summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
            raise ValidationFailed(f"invalid settings for plugin {plugin.name!r}: {summary}", errors=errors) from None

    def _seal(self, endpoint_id: str, plugin: Plugin, model: BaseModel) -> dict[str, Any]:
        """Settings as stored: JSON values, secret fields encrypted with the endpoint and field as context."""
        data = model.model_dump(mode="json")
        _refuse_mask(model, plugin)
        for name in plugin.secret_fields():
            value = getattr(model, name)
            if isinstance(value, SecretStr):
                data[name] = self._box.encrypt(value.get_secret_value(), context=f"endpoint:{endpoint_id}:{name}")
            else:
                data[name] = None
        return data
