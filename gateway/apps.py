"""Dify apps registered with the gateway: a name, an API base URL, an app key (secret) and a mode."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, Field, SecretStr, field_validator

from gateway.clock import Clock
from gateway.exceptions import BadRequest, Conflict, NotFound, UpstreamError
from gateway.security.crypto import MASK, SecretBox
from gateway.storage.base import Store

__all__ = ["APP_MODES", "DEFAULT_BASE_URL", "AppIn", "AppRecord", "AppService", "AppUpdate", "InfoFetcher"]

APP_MODES = ("chat", "agent-chat", "agent", "advanced-chat", "completion", "workflow")
DEFAULT_BASE_URL = "https://api.dify.ai/v1"
SIMULATOR_BASE_URL = "http://127.0.0.1:5001/v1"  # `dify-gateway simulate-dify` with its default port
COLLECTION = "apps"
NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,62}$"
# Like endpoint resolution: this process sees its own changes at once, other processes' within this.
CACHE_SECONDS = 1.0

# (name, base_url, api_key) -> the app's `GET /info` answer; raises UpstreamError when the key fails.
InfoFetcher = Callable[[str, str, str], Awaitable[dict[str, Any]]]


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

    name: str = Field(pattern=NAME_PATTERN, description="Short name, e.g. 'support'")
    base_url: str = Field(default=DEFAULT_BASE_URL, description="Dify Service API base URL")
    api_key: SecretStr = Field(description="The app's API key (app-...)", min_length=1, max_length=512)
    mode: str | None = Field(default=None, description="Detected from GET /info when omitted")
    fallback: str | None = Field(default=None, description="App asked instead when this one fails before answering")

    _base = field_validator("base_url")(_check_base_url)
    _mode = field_validator("mode")(_check_mode)


class AppUpdate(BaseModel):
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

    def to_doc(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "base_url": self.base_url,
            "api_key": self.api_key,
            "mode": self.mode,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "fallback": self.fallback,
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> AppRecord:
        return cls(**doc)


class AppService:
    """Registers, reads and checks apps. The key is encrypted at rest and never read back in clear."""

    def __init__(self, store: Store, box: SecretBox, clock: Clock, fetch_info: InfoFetcher) -> None:
        self._store = store
        self._box = box
        self._clock = clock
        self._fetch_info = fetch_info
        self._cache: dict[str, tuple[float, AppRecord | None]] = {}
        self._keys: dict[str, str] = {}

    async def add(self, app: AppIn) -> AppRecord:
        key = app.api_key.get_secret_value().strip()
        mode = app.mode or await self._detect_mode(app.name, app.base_url, key)
        now = self._clock.time()
        if app.fallback is not None:
            await self._check_fallback(app.name, app.fallback)
        record = AppRecord(app.name, app.base_url, self._encrypt(app.name, key), mode, now, now, app.fallback)
        if not await self._store.doc_create(COLLECTION, app.name, record.to_doc()):
            raise Conflict(f"an app named {app.name!r} already exists")
        return record

    async def update(self, name: str, change: AppUpdate) -> AppRecord:
        record = await self.get(name)
        base_url = change.base_url or record.base_url
        key = change.api_key.get_secret_value().strip() if change.api_key else self.api_key(record)
        mode = change.mode or (
            await self._detect_mode(name, base_url, key) if change.api_key or change.base_url else record.mode
        )
        fallback = record.fallback
        if change.fallback is not None:
            fallback = change.fallback or None
            if fallback:
                await self._check_fallback(name, fallback)
        updated = AppRecord(
            name, base_url, self._encrypt(name, key), mode, record.created_at, self._clock.time(), fallback
        )
        await self._store.doc_put(COLLECTION, name, updated.to_doc())
        self._cache.clear()
        return updated

    async def get(self, name: str) -> AppRecord:
        doc = await self._store.doc_get(COLLECTION, name)
        if doc is None:
            raise NotFound(f"no app named {name!r}")
        return AppRecord.from_doc(doc)

    async def cached(self, name: str) -> AppRecord | None:
        """The app as read at most `CACHE_SECONDS` ago (the request path); None if it doesn't exist."""
        now = self._clock.monotonic()
        hit = self._cache.get(name)
        if hit is not None and hit[0] > now:
            return hit[1]
        doc = await self._store.doc_get(COLLECTION, name)
        record = AppRecord.from_doc(doc) if doc else None
        if len(self._cache) > 1000:
            self._cache.clear()
        self._cache[name] = (now + CACHE_SECONDS, record)
        return record

    async def _check_fallback(self, name: str, fallback: str) -> None:
        if fallback == name:
            raise BadRequest("an app can't be its own fallback")
        if await self._store.doc_get(COLLECTION, fallback) is None:
            raise BadRequest(f"the fallback app {fallback!r} does not exist")

    async def all(self) -> list[AppRecord]:
        return [AppRecord.from_doc(doc) for doc in await self._store.doc_list(COLLECTION)]

    async def remove(self, name: str, *, bound_to: list[str]) -> None:
        """Delete the app unless endpoints (`bound_to`, their ids) still use it."""
        await self.get(name)
        if bound_to:
            raise Conflict(f"app {name!r} is used by endpoints {', '.join(bound_to)}; delete or rebind them first")
        dependants = [a.name for a in await self.all() if a.fallback == name]
        if dependants:
            raise Conflict(f"app {name!r} is the fallback of {', '.join(dependants)}; change them first")
        await self._store.doc_delete(COLLECTION, name)
        self._cache.clear()

    async def check(self, name: str) -> dict[str, Any]:
        """Call the app's `GET /info` with its key: proves the key works. Returns the info."""
        record = await self.get(name)
        return await self._info(record.name, record.base_url, self.api_key(record))

    async def reseal(self, name: str) -> bool:
        """Re-encrypt the app's key under the newest secret key; True when it changed."""
        record = await self.get(name)
        if not self._box.needs_rotation(record.api_key):
            return False
        resealed = replace(record, api_key=self._box.reencrypt(record.api_key, context=f"app:{name}"))
        await self._store.doc_put(COLLECTION, name, resealed.to_doc())
        self._cache.clear()
        return True

    def api_key(self, record: AppRecord) -> str:
        """The decrypted key (cached per ciphertext: decrypting on every reverse call is waste)."""
        key = self._keys.get(record.api_key)
        if key is None:
            key = self._box.decrypt(record.api_key, context=f"app:{record.name}")
            if len(self._keys) > 1000:
                self._keys.clear()
            self._keys[record.api_key] = key
        return key

    @staticmethod
    def public(record: AppRecord) -> dict[str, Any]:
        """The record as shown to operators: the key masked without revealing its length."""
        return {
            "name": record.name,
            "base_url": record.base_url,
            "api_key": MASK,
            "mode": record.mode,
            "fallback": record.fallback,
            "created_at": record.created_at,
            "updated_at": record.updated_at,
        }

    def _encrypt(self, name: str, key: str) -> str:
        return self._box.encrypt(key, context=f"app:{name}")

    async def _info(self, name: str, base_url: str, key: str) -> dict[str, Any]:
        """`GET /info`; an answer that is not a JSON object (say, the console's HTML) is an upstream error."""
        try:
            info = await self._fetch_info(name, base_url, key)
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

    async def _detect_mode(self, name: str, base_url: str, key: str) -> str:
        info = await self._info(name, base_url, key)
        mode = info.get("mode")
        if mode not in APP_MODES:
            raise BadRequest(f"the app reported an unknown mode {mode!r}; pass the mode explicitly")
        return str(mode)


def _without_userinfo(url: str) -> str:
    """`url` without `user:password@`, for messages."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=host)).rstrip("/")
