"""The Dify plugin session protocol as JSON lines (dify-plugins.md §5; `dify_plugin.core.server`).

Host → plugin: one line per message, `{"session_id", "event": "request" | "backwards_response",
"data", ...}`. Plugin → host: `{"event": "session" | "log" | "error" | "heartbeat", "session_id",
"data"}` lines, each followed by a blank one. A local plugin also writes its configuration (a JSON
object without `event`) as its first line: lines that are not events are skipped.

Transport-neutral: the same lines travel over a subprocess's stdio or a TCP connection.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["Incoming", "backwards_response", "decode_line", "encode_request"]

IncomingEvent = Literal["session", "log", "error", "heartbeat"]
_EVENTS: frozenset[str] = frozenset({"session", "log", "error", "heartbeat"})


@dataclass(frozen=True, slots=True)
class Incoming:
    """One message from the plugin."""

    event: IncomingEvent
    session_id: str | None
    data: dict[str, Any]


def decode_line(line: bytes) -> Incoming | None:
    """The message on `line`; None for a blank line or one that is not a plugin event."""
    line = line.strip()
    if not line:
        return None
    try:
        document = json.loads(line)
    except ValueError:
        return None
    if not isinstance(document, dict) or document.get("event") not in _EVENTS:
        return None
    session_id = document.get("session_id")
    data = document.get("data")
    return Incoming(
        event=document["event"],
        session_id=session_id if isinstance(session_id, str) else None,
        data=data if isinstance(data, dict) else {},
    )


def _line(document: dict[str, Any]) -> bytes:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def encode_request(session_id: str, data: dict[str, Any], **context: Any) -> bytes:
    """A request line: `data` is the invocation (`{"type": "endpoint", "action": ...}`); `context`
    carries `conversation_id`, `message_id`, `app_id`, `endpoint_id` where known."""
    return _line({"session_id": session_id, "event": "request", "data": data, **context})


def backwards_response(
    session_id: str, request_id: str, event: Literal["response", "error", "end"], *, message: str = "", data: Any = None
) -> bytes:
    """The answer to a reverse call: `response` lines with `data`, then `end`; or one `error`."""
    return _line(
        {
            "session_id": session_id,
            "event": "backwards_response",
            "data": {"backwards_request_id": request_id, "event": event, "message": message, "data": data},
        }
    )
