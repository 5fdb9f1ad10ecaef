"""The runtime state of a Dify plugin's process, as `plugins list`, the admin API and /metrics show it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

__all__ = ["RuntimeState", "RuntimeStatus"]

# stopped: not started (processes start with their first request) or stopped with the gateway;
# starting: spawned, not yet heard from; running; backoff: exited, restarting after a pause;
# crash-loop: exited again and again soon after starting (restarts go on at the longest pause).
RuntimeState = Literal["stopped", "starting", "running", "backoff", "crash-loop"]


@dataclass(frozen=True, slots=True)
class RuntimeStatus:
    plugin: str
    state: RuntimeState
    pid: int | None = None
    restarts: int = 0
    last_exit: str | None = None  # why the last process ended ("exit code 1", "no heartbeat for 60s")
    retry_in: float | None = None  # seconds until the next start, while in backoff or crash-loop
    sessions: int = 0  # requests in flight

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
