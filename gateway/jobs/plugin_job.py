"""What a plugin's job stores: which of its handlers runs, the plugin's idempotency key, its data.

A plugin job is a job of kind `plugin` whose payload is `{"handler": name, "key": key, "data": {...}}`.
The plugin's own key is a field of the payload; the job's store-level key
(`plugin:{endpoint}:{handler}:{key}`, see `plugin_job_key`) only makes enqueueing idempotent and is
never read back.

Upgrade path: jobs enqueued before the key became a payload field (0.1.0) have no `key` field;
`PluginJobPayload.of` recovers their key from the job's store key, here and nowhere else.
Once no such job is left (they are purged after `GATEWAY_JOB_RETENTION`) the fallback can go.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.storage.base import Job

__all__ = ["PLUGIN_JOB", "PluginJobPayload", "plugin_job_key"]

PLUGIN_JOB = "plugin"  # the kind of every plugin job


def plugin_job_key(endpoint_id: str, handler: str, key: str) -> str:
    """The store-level idempotency key of a plugin job: the plugin's key scoped to its endpoint and handler."""
    return f"plugin:{endpoint_id}:{handler}:{key}"


@dataclass(frozen=True, slots=True)
class PluginJobPayload:
    """The payload of a plugin job. `data` is what the plugin enqueued (secret fields sealed in the store)."""

    handler: str
    data: dict[str, Any]
    key: str | None = None

    def dump(self) -> dict[str, Any]:
        return {"handler": self.handler, "key": self.key, "data": self.data}

    @classmethod
    def of(cls, job: Job) -> PluginJobPayload:
        """The payload of a stored plugin job, including one enqueued before `key` was a field."""
        payload = job.payload
        handler = str(payload.get("handler", ""))
        data = payload.get("data") or {}
        if "key" in payload:
            key = payload["key"]
            return cls(handler, data, None if key is None else str(key))
        # The old format: the plugin's key only as the tail of the job's store key.
        prefix = plugin_job_key(job.endpoint_id or "", handler, "")
        legacy = job.key[len(prefix) :] if job.key and job.key.startswith(prefix) else None
        return cls(handler, data, legacy)
