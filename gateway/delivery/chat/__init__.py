"""Chat delivery: a streamed answer shown on a chat platform through a small adapter.

A platform plugin writes a `ChatAdapter` (its post/edit/delete calls, an optional
`NativeStream`, its `ChatRules`) and calls `deliver`; pacing, paging, rate limits, reruns,
failure notes and native streaming are the engine's.
"""

from __future__ import annotations

from gateway.delivery.chat.adapter import (
    ChatAdapter as ChatAdapter,
    ChatRules as ChatRules,
    Draft as Draft,
    Fence as Fence,
    MessageRef as MessageRef,
    NativeStream as NativeStream,
    ResumableStream as ResumableStream,
    StreamUnavailable as StreamUnavailable,
    default_failure_note as default_failure_note,
    failure_code as failure_code,
)
from gateway.delivery.chat.engine import (
    AnswerSource as AnswerSource,
    Delivered as Delivered,
    Handover as Handover,
    deliver as deliver,
)
from gateway.delivery.chat.posted import (
    KeyValue as KeyValue,
    MemoryMessages as MemoryMessages,
    PostedKind as PostedKind,
    PostedMessage as PostedMessage,
    PostedMessages as PostedMessages,
    StoredMessages as StoredMessages,
)
from gateway.delivery.chat.said import Said as Said, said as said
from gateway.delivery.chat.typing import repeating as repeating

__all__ = [
    "AnswerSource",
    "ChatAdapter",
    "ChatRules",
    "Delivered",
    "Draft",
    "Fence",
    "Handover",
    "KeyValue",
    "MemoryMessages",
    "MessageRef",
    "NativeStream",
    "PostedKind",
    "PostedMessage",
    "PostedMessages",
    "ResumableStream",
    "Said",
    "StoredMessages",
    "StreamUnavailable",
    "default_failure_note",
    "deliver",
    "failure_code",
    "repeating",
    "said",
]
