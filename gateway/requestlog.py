"""The per-endpoint request log: the last N requests, without secrets or (by default) bodies."""

from __future__ import annotations

import base64
from dataclasses import asdict, dataclass
from typing import Any

from gateway.storage.base import Store

__all__ = ["RequestLog", "RequestLogEntry"]

BODY_LOG_LIMIT = 4096


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


def loggable_body(body: bytes) -> str:
    """The first 4 KiB of a body for the log: text when it is UTF-8, else base64 marked as such."""
    head = body[:BODY_LOG_LIMIT]
    suffix = "…" if len(body) > BODY_LOG_LIMIT else ""
    try:
        return head.decode("utf-8") + suffix
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(head).decode() + suffix


class RequestLog:
    def __init__(self, store: Store, size: int) -> None:
        self._store = store
        self._size = size

    async def record(self, endpoint_id: str, entry: RequestLogEntry) -> None:
        await self._store.log_append(self._stream(endpoint_id), asdict(entry), max_len=self._size)

    async def list(self, endpoint_id: str, limit: int = 50) -> list[dict[str, Any]]:
        return await self._store.log_list(self._stream(endpoint_id), max(1, min(limit, self._size)))

    async def drop(self, endpoint_id: str) -> None:
        await self._store.log_delete(self._stream(endpoint_id))

    @staticmethod
    def _stream(endpoint_id: str) -> str:
        return f"requests:{endpoint_id}"
