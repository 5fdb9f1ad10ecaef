"""The Dify Service API client: SSE decoding, typed events, streaming answers, retries, breaker.

Import from here; the submodules are one concept each (`sse`, `events`, `models`, `answer`,
`stream`, `client`, `retry`, `breaker`, `errors`). Names load on first use, so the value objects
(`gateway.dify.models`, which the plugin contract re-exports) come without the HTTP client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.lazy import lazy_exports

if TYPE_CHECKING:
    from gateway.dify.answer import AnswerBuilder as AnswerBuilder
    from gateway.dify.breaker import BreakerRegistry as BreakerRegistry, CircuitBreaker as CircuitBreaker
    from gateway.dify.client import (
        DEFAULT_TIMEOUT as DEFAULT_TIMEOUT,
        DifyClient as DifyClient,
        make_http_client as make_http_client,
    )
    from gateway.dify.errors import (
        AnswerCutOff as AnswerCutOff,
        AnswerTooLarge as AnswerTooLarge,
        ConversationNotFound as ConversationNotFound,
        DifyStreamError as DifyStreamError,
        WorkflowFailed as WorkflowFailed,
    )
    from gateway.dify.events import DifyEvent as DifyEvent, parse_event as parse_event
    from gateway.dify.models import (
        Answer as Answer,
        AppDescription as AppDescription,
        AppMode as AppMode,
        AskRequest as AskRequest,
        Delta as Delta,
        DeltaKind as DeltaKind,
        DifyApp as DifyApp,
    )
    from gateway.dify.retry import RetryPolicy as RetryPolicy
    from gateway.dify.stream import DifyAnswerStream as DifyAnswerStream

_WHERE = {
    "AnswerBuilder": "answer",
    "BreakerRegistry": "breaker",
    "CircuitBreaker": "breaker",
    "DEFAULT_TIMEOUT": "client",
    "DifyClient": "client",
    "make_http_client": "client",
    "AnswerCutOff": "errors",
    "AnswerTooLarge": "errors",
    "ConversationNotFound": "errors",
    "DifyStreamError": "errors",
    "WorkflowFailed": "errors",
    "DifyEvent": "events",
    "parse_event": "events",
    "Answer": "models",
    "AppDescription": "models",
    "AppMode": "models",
    "AskRequest": "models",
    "Delta": "models",
    "DeltaKind": "models",
    "DifyApp": "models",
    "RetryPolicy": "retry",
    "DifyAnswerStream": "stream",
}

__all__ = sorted(_WHERE)

__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
