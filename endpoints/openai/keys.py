"""API keys of an `openai` endpoint: generated here, stored only as SHA-256 hashes.

Where they live (no core change needed: actions and the verifier both reach `ctx.storage`):

* the **initial key**: made by the plugin's `generated` factory when the endpoint is created;
  the key is shown once and the `api_key` setting stores `sha256:<hex>` of it;
* keys made by the **`add-key`** action: in the endpoint's storage under `keys`, one JSON
  document `{"keys": [{id, sha256, label, created_at, models}], "revoked": [ids]}`. Revoking an
  added key deletes it; revoking the initial key lists its id under `revoked` (the setting stays).

A key's id is `key_` + the first 12 hex digits of its hash: stable and safe to show (a prefix of
the hash of a 256-bit random key gives nothing away). Checking a presented key hashes it once and
compares the digest with every known hash using `hmac.compare_digest`, without stopping early.

The check (`authenticate`) reads the active keys from the endpoint's `ctx.memory`, loaded from
the key document at most once per `KEYS_TTL` seconds (an absent document is remembered too): a
request makes no store call for its key. So a key added or revoked takes effect within
`KEYS_TTL` seconds on every replica, and at once in the process whose admin API ran the action
(`add_key` and `revoke_key` drop the remembered keys of the endpoint's context). The verifier
hands the key it accepted to the handler as `Verdict.verified` (`verified_key`): the handler
checks nothing again. A handler reached without the verifier checks the key itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from endpoints.openai.hashes import hash_key, setting_hash
from endpoints.openai.settings import OpenAISettings
from gateway.plugin import BadRequest, Context, Headers, NotFound, Request, Storage

__all__ = [
    "KeyInfo",
    "add_key",
    "authenticate",
    "bearer_token",
    "generate_initial_key",
    "hash_key",
    "key_id",
    "list_keys",
    "revoke_key",
    "setting_hash",
    "verified_key",
]

KEY_PREFIX = "sk-dgw-"
DOC = "keys"
LOCK = "keys:lock"
MAX_KEYS = 100
KEYS_TTL = 1.0  # how long a process answers from the key document it read (see the module doc)
_MEMORY = "openai:keys"  # the `ctx.memory` slot of the added keys and revocations


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """An authenticated key: its id, label and the models it may use (None: all)."""

    id: str
    label: str
    models: tuple[str, ...] | None = None

    def allows(self, model: str) -> bool:
        return self.models is None or model in self.models


def key_id(digest_hex: str) -> str:
    return "key_" + digest_hex[:12]


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def generate_initial_key() -> tuple[str, str]:
    """The `generated` factory of the `api_key` setting: (the key, shown once; its hash, stored)."""
    key = new_key()
    return key, "sha256:" + hash_key(key)


def bearer_token(headers: Headers) -> str | None:
    """The key of `Authorization: Bearer <key>` (nothing else is accepted), or None."""
    scheme, _, value = (headers.get("authorization") or "").partition(" ")
    value = value.strip()
    return value if scheme.lower() == "bearer" and value else None


async def _load(storage: Storage) -> dict[str, Any]:
    raw = await storage.get(DOC)
    doc: dict[str, Any] = json.loads(raw) if raw else {}
    doc.setdefault("keys", [])
    doc.setdefault("revoked", [])
    return doc


@dataclass(frozen=True, slots=True)
class _Stored:
    """The key document as a check needs it: the added keys' digests and the revoked ids."""

    added: tuple[tuple[bytes, KeyInfo], ...]
    revoked: frozenset[str]

    @classmethod
    def of(cls, doc: dict[str, Any]) -> _Stored:
        added = []
        for entry in doc["keys"]:
            models = entry.get("models")
            info = KeyInfo(entry["id"], entry.get("label") or "", tuple(models) if models else None)
            added.append((bytes.fromhex(entry["sha256"]), info))
        return cls(tuple(added), frozenset(doc["revoked"]))

    def candidates(self, initial: str | None) -> list[tuple[bytes, KeyInfo]]:
        """(digest, key) of every active key."""
        found: list[tuple[bytes, KeyInfo]] = []
        if initial is not None and key_id(initial) not in self.revoked:
            found.append((bytes.fromhex(initial), KeyInfo(key_id(initial), "initial")))
        found += self.added
        return found


async def _stored(ctx: Context[OpenAISettings]) -> _Stored:
    async def load() -> _Stored:
        return _Stored.of(await _load(ctx.storage))

    stored = await ctx.memory.get_or_load(_MEMORY, load, ttl=KEYS_TTL)
    assert stored is not None  # `load` always gives one
    return stored


def _presented(headers: Headers) -> bytes | None:
    presented = bearer_token(headers)
    return None if presented is None else hashlib.sha256(presented.encode("utf-8")).digest()


async def authenticate(headers: Headers, ctx: Context[OpenAISettings]) -> KeyInfo | None:
    """The key presented in `headers`, or None when it is missing, unknown or revoked (as of at
    most `KEYS_TTL` seconds ago, see the module doc)."""
    digest = _presented(headers)
    if digest is None:
        return None
    match: KeyInfo | None = None
    for stored, info in (await _stored(ctx)).candidates(setting_hash(ctx.settings.api_key)):
        # No early exit: every known hash is compared, each in constant time.
        if hmac.compare_digest(digest, stored):
            match = info
    return match


async def verified_key(request: Request, ctx: Context[OpenAISettings]) -> KeyInfo | None:
    """The key the verifier accepted for `request` (its `Verdict.verified`), else `authenticate`."""
    if isinstance(request.verified, KeyInfo):
        return request.verified
    return await authenticate(request.headers, ctx)


@contextlib.asynccontextmanager
async def _locked(ctx: Context[OpenAISettings]) -> AsyncIterator[None]:
    """Serialize changes to the key document (actions are rare; a lease keeps a crash harmless)."""
    token = secrets.token_hex(8)
    for _ in range(100):
        if await ctx.storage.set_if_absent(LOCK, token, ttl=10.0):
            break
        await ctx.clock.sleep(0.05)
    else:
        raise BadRequest("the key list is being changed by someone else; try again")
    try:
        yield
    finally:
        ctx.memory.forget(_MEMORY)  # this process's requests see the change at once
        if await ctx.storage.get(LOCK) == token:
            await ctx.storage.delete(LOCK)


def _models(raw: str | None) -> list[str] | None:
    models = [m.strip() for m in (raw or "").split(",") if m.strip()]
    return models or None


async def add_key(ctx: Context[OpenAISettings], *, label: str = "", models: str | None = None) -> dict[str, Any]:
    """Make a key; the result holds the key itself, shown this once."""
    key = new_key()
    digest = hash_key(key)
    allowed = _models(models)
    entry = {
        "id": key_id(digest),
        "sha256": digest,
        "label": label[:100],
        "created_at": int(ctx.clock.time()),
        "models": allowed,
    }
    async with _locked(ctx):
        doc = await _load(ctx.storage)
        if len(doc["keys"]) >= MAX_KEYS:
            raise BadRequest(f"an endpoint holds at most {MAX_KEYS} keys; revoke some first")
        doc["keys"].append(entry)
        await ctx.storage.set(DOC, json.dumps(doc))
    return {"id": entry["id"], "key": key, "label": entry["label"], "models": allowed}


async def revoke_key(ctx: Context[OpenAISettings], key_to_revoke: str) -> dict[str, Any]:
    """Revoke a key by id; `NotFound` when no such key is active."""
    initial = setting_hash(ctx.settings.api_key)
    async with _locked(ctx):
        doc = await _load(ctx.storage)
        kept = [entry for entry in doc["keys"] if entry["id"] != key_to_revoke]
        if len(kept) != len(doc["keys"]):
            doc["keys"] = kept
        elif initial is not None and key_id(initial) == key_to_revoke and key_to_revoke not in doc["revoked"]:
            doc["revoked"].append(key_to_revoke)
        else:
            raise NotFound(f"no active key {key_to_revoke!r}")
        await ctx.storage.set(DOC, json.dumps(doc))
    return {"revoked": key_to_revoke}


async def list_keys(ctx: Context[OpenAISettings]) -> dict[str, Any]:
    """The active keys (ids, labels, models; never hashes)."""
    doc = await _load(ctx.storage)
    initial = setting_hash(ctx.settings.api_key)
    rows: list[dict[str, Any]] = []
    if initial is not None and key_id(initial) not in doc["revoked"]:
        rows.append({"id": key_id(initial), "label": "initial", "created_at": None, "models": None})
    rows += [{k: entry.get(k) for k in ("id", "label", "created_at", "models")} for entry in doc["keys"]]
    return {"keys": rows}
