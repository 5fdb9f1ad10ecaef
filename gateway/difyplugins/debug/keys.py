"""Remote-debugging keys: one per workspace, what a developer's plugin presents in its handshake
(`REMOTE_INSTALL_KEY`).

Only the key's SHA-256 is stored (the key is 256 random bits: no slow hash needed); it is shown
once, when made. A handshake's key is compared with every workspace's digest in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from gateway.clock import Clock
from gateway.storage.base import Store

__all__ = ["COLLECTION", "DebugKey", "DebugKeys"]

COLLECTION = "dify_debug_keys"
PREFIX = "dgdk_"


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True, slots=True)
class DebugKey:
    workspace: str
    digest: str
    created_at: float

    def to_doc(self) -> dict[str, Any]:
        return {"workspace": self.workspace, "digest": self.digest, "created_at": self.created_at}

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> DebugKey:
        return cls(workspace=doc["workspace"], digest=doc["digest"], created_at=doc["created_at"])


class DebugKeys:
    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def get(self, workspace: str) -> DebugKey | None:
        doc = await self._store.doc_get(COLLECTION, workspace)
        return None if doc is None else DebugKey.from_doc(doc)

    async def issue(self, workspace: str, *, rotate: bool = False) -> tuple[DebugKey, str | None]:
        """The workspace's key record and, when one was made now, the key itself (shown this once).

        A workspace that has a key keeps it unless `rotate`: the new key replaces it, and plugins
        connected with the old one stay connected until they reconnect."""
        current = await self.get(workspace)
        if current is not None and not rotate:
            return current, None
        key = PREFIX + secrets.token_urlsafe(32)
        record = DebugKey(workspace=workspace, digest=_digest(key), created_at=self._clock.time())
        await self._store.doc_put(COLLECTION, workspace, record.to_doc())
        return record, key

    async def workspace_of(self, key: str) -> str | None:
        """The workspace whose key `key` is, or None. Every digest is compared, in constant time."""
        presented = _digest(key)
        found = None
        for doc in await self._store.doc_list(COLLECTION):
            if hmac.compare_digest(presented, str(doc.get("digest", ""))):
                found = str(doc["workspace"])
        return found
