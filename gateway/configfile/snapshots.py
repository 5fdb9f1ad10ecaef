"""Snapshots: the gateway's configuration kept in the store under a tag, secrets sealed.

A snapshot is what `export` writes (secrets as `${VAR}` references, plus each endpoint's URL
token) and the secrets themselves, each encrypted with the gateway's `SecretBox` bound to the
snapshot and the variable (a sealed value copied elsewhere does not open). Restoring is applying
the snapshot with its own secrets as the variables, so keys and URLs come back too.
"""

from __future__ import annotations

import re
from typing import Any

from gateway.clock import Clock
from gateway.configfile.exporter import to_file
from gateway.configfile.model import ConfigFile, State
from gateway.exceptions import BadRequest, Conflict, NotFound
from gateway.security.crypto import SecretBox
from gateway.storage.base import Store, json_dumps

__all__ = ["COLLECTION", "SnapshotStore"]

COLLECTION = "snapshots"
TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class SnapshotStore:
    def __init__(self, store: Store, box: SecretBox, clock: Clock) -> None:
        self._store = store
        self._box = box
        self._clock = clock

    async def save(self, tag: str, state: State) -> dict[str, Any]:
        """Keep `state` under `tag` (`Conflict` if the workspace has a snapshot of that tag)."""
        if not TAG.match(tag):
            raise BadRequest("a snapshot tag is 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
        config, secrets = to_file(state, with_urls=True)
        key = _key(state.workspace, tag)
        doc = {
            "tag": tag,
            "workspace": state.workspace,
            "created_at": self._clock.time(),
            "config": config.model_dump(mode="json"),
            "sealed": {name: self._box.encrypt(value, context=_context(key, name)) for name, value in secrets.items()},
        }
        if not await self._store.doc_create(COLLECTION, key, doc):
            raise Conflict(f"a snapshot tagged {tag!r} exists; delete it first or pick another tag")
        return _summary(doc)

    async def list(self, workspace: str = "default") -> list[dict[str, Any]]:
        docs = [doc for doc in await self._store.doc_list(COLLECTION) if doc["workspace"] == workspace]
        return [_summary(doc) for doc in sorted(docs, key=lambda d: (d["created_at"], d["tag"]))]

    async def load(self, tag: str, workspace: str = "default") -> tuple[ConfigFile, dict[str, str]]:
        """The snapshot's configuration and its secrets, opened."""
        key = _key(workspace, tag)
        doc = await self._store.doc_get(COLLECTION, key)
        if doc is None:
            raise NotFound(f"no snapshot tagged {tag!r}")
        config = ConfigFile.model_validate_json(json_dumps(doc["config"]))
        secrets = {name: self._box.decrypt(value, context=_context(key, name)) for name, value in doc["sealed"].items()}
        return config, secrets

    async def delete(self, tag: str, workspace: str = "default") -> None:
        if not await self._store.doc_delete(COLLECTION, _key(workspace, tag)):
            raise NotFound(f"no snapshot tagged {tag!r}")

    async def reseal(self) -> int:
        """Re-encrypt every snapshot's secrets under the newest secret key; how many values changed."""
        changed = 0
        for doc in await self._store.doc_list(COLLECTION):
            key = _key(doc["workspace"], doc["tag"])
            sealed = dict(doc["sealed"])
            for name, value in sealed.items():
                if self._box.needs_rotation(value):
                    sealed[name] = self._box.reencrypt(value, context=_context(key, name))
                    changed += 1
            if sealed != doc["sealed"]:
                await self._store.doc_put(COLLECTION, key, {**doc, "sealed": sealed})
        return changed


def _key(workspace: str, tag: str) -> str:
    return f"{workspace}:{tag}"


def _context(key: str, name: str) -> str:
    return f"snapshot:{key}:{name}"


def _summary(doc: dict[str, Any]) -> dict[str, Any]:
    config = doc["config"]
    return {
        "tag": doc["tag"],
        "workspace": doc["workspace"],
        "created_at": doc["created_at"],
        "apps": len(config.get("apps", ())),
        "endpoints": len(config.get("endpoints", ())),
    }
