"""The per-endpoint request log: the last N requests, without secrets or (by default) bodies.

Entries are buffered in memory and written in batches, so the log costs the request path nothing
but an append to a list; at most one flush interval of entries is lost if the process dies.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from dataclasses import dataclass, fields
from typing import Any

from gateway.clock import Clock
from gateway.storage.base import Store

__all__ = ["RequestLog", "RequestLogEntry", "loggable_body"]

logger = logging.getLogger(__name__)

BODY_LOG_LIMIT = 4096
FLUSH_INTERVAL = 0.2
MAX_BUFFERED = 10_000


@dataclass(frozen=True, slots=True)
class RequestLogEntry:
    time: float
    request_id: str
    method: str
    path: str
    status: int
    latency_ms: float
    verdict: str  # ok | failed | skipped | not-run
    client_ip: str | None = None
    body: str | None = None  # only when the operator turned body logging on for the endpoint

    def as_dict(self) -> dict[str, Any]:
        # Not dataclasses.asdict: its deep copy is measurable on the request path (and so is fields()).
        return {name: getattr(self, name) for name in _ENTRY_FIELDS}


_ENTRY_FIELDS = tuple(f.name for f in fields(RequestLogEntry))


def loggable_body(body: bytes) -> str:
    """The first 4 KiB of a body for the log: text when it is UTF-8, else base64 marked as such."""
    head = body[:BODY_LOG_LIMIT]
    suffix = "…" if len(body) > BODY_LOG_LIMIT else ""
    try:
        return head.decode("utf-8") + suffix
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(head).decode() + suffix


class RequestLog:
    def __init__(self, store: Store, size: int, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self._size = size
        self._pending: dict[str, list[dict[str, Any]]] = {}
        self._count = 0
        self._flusher: asyncio.Task[None] | None = None

    def record(self, endpoint_id: str, entry: RequestLogEntry) -> None:
        """Queue an entry; it is written within `FLUSH_INTERVAL` seconds."""
        if self._count >= MAX_BUFFERED:
            return  # the store is not keeping up: drop log lines rather than grow without bound
        self._pending.setdefault(endpoint_id, []).append(entry.as_dict())
        self._count += 1
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_later(), name="request-log-flush")

    async def _flush_later(self) -> None:
        await self._clock.idle(FLUSH_INTERVAL)
        await self.flush()

    async def flush(self) -> None:
        """Write everything buffered now."""
        pending, self._pending, self._count = self._pending, {}, 0
        for endpoint_id, entries in pending.items():
            try:
                await self._store.log_append(self._stream(endpoint_id), entries[-self._size :], max_len=self._size)
            except Exception:
                logger.exception("writing the request log of %s failed", endpoint_id)

    async def aclose(self) -> None:
        if self._flusher is not None and not self._flusher.done():
            self._flusher.cancel()
        await self.flush()

    async def list(self, endpoint_id: str, limit: int = 50) -> list[dict[str, Any]]:
        return await self._store.log_list(self._stream(endpoint_id), max(1, min(limit, self._size)))

    async def drop(self, endpoint_id: str) -> None:
        self._pending.pop(endpoint_id, None)
        await self._store.log_delete(self._stream(endpoint_id))

    @staticmethod
    def _stream(endpoint_id: str) -> str:
        return f"requests:{endpoint_id}"
