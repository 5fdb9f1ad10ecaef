"""Dify-specific upstream errors and their classification (dify-api.md §5), pure.

    UpstreamError (gateway.exceptions)
    ├── ConversationNotFound    404 "Conversation Not Exists." -> drop the mapping, retry once without it
    ├── DifyStreamError         `event: error` inside a started stream (never retried); `.partial`
    ├── WorkflowFailed          `workflow_finished` with status failed/stopped; `.partial`
    ├── AnswerCutOff            the stream closed without a terminator; `.partial`
    ├── AnswerTooLarge          the accumulated answer passed the size cap; `.partial`
    ├── UpstreamTimeout         (gateway.exceptions) connect/read timeout or the overall deadline
    └── CircuitOpen             (gateway.exceptions) the app failed repeatedly; failing fast

`classify(status, code, message)` maps an HTTP error envelope (or an in-stream `error` event)
to one of these with `retryable` set per §5: connect errors, 5xx and 429 `too_many_requests`
are retryable; 429 `rate_limit_error` (plan quota) and every 4xx configuration error are not.
`counts_against_app(error)` says which of them trip the app's breaker: only an app that is down.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.exceptions import UpstreamError

if TYPE_CHECKING:
    from gateway.dify.models import Answer

__all__ = [
    "AnswerCutOff",
    "AnswerTooLarge",
    "ConversationNotFound",
    "DifyStreamError",
    "WorkflowFailed",
    "classify",
    "counts_against_app",
]

_MAX_UPSTREAM_MESSAGE = 300


class ConversationNotFound(UpstreamError):
    """Dify no longer knows the `conversation_id` (app or key changed, or it was deleted)."""

    code = "conversation_not_found"


class _PartialAnswerError(UpstreamError):
    """An error after the stream started; `partial` is what arrived before it."""

    def __init__(self, message: str = "", *, partial: Answer | None = None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.partial = partial


class DifyStreamError(_PartialAnswerError):
    """Dify sent `event: error` after the stream started. Classified like HTTP errors, never retried."""


class WorkflowFailed(_PartialAnswerError):
    """The workflow run ended with `status` failed (or stopped by someone else)."""


class AnswerCutOff(_PartialAnswerError):
    """The stream closed (or broke) before a terminator: the answer is incomplete."""


class AnswerTooLarge(_PartialAnswerError):
    """The accumulated answer exceeded the client's cap (Dify payloads are untrusted)."""


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_UPSTREAM_MESSAGE else text[: _MAX_UPSTREAM_MESSAGE - 1] + "…"


def classify(status: int | None, code: str | None, message: str | None, *, app: str) -> UpstreamError:
    """Build the right `UpstreamError` for a Dify error envelope `{status, code, message}`.

    Args:
        status: the envelope's (or HTTP) status; `None` when an in-stream error has none.
        code: Dify's `code` string, if any.
        message: Dify's human-readable message (clipped; Dify never sees our secrets).
        app: the app name, for the message.
    """
    detail = _clip(message or "")

    def make(cls: type[UpstreamError], text: str, retryable: bool = False) -> UpstreamError:
        return cls(text, upstream_status=status, upstream_code=code, retryable=retryable, app=app)

    if status == 401:
        return make(UpstreamError, f"the app API key was rejected by Dify (app '{app}')")
    if status == 404 and "conversation not exist" in detail.lower():
        return make(ConversationNotFound, f"Dify no longer knows this conversation (app '{app}')")
    if status == 429:
        if code == "rate_limit_error":
            return make(UpstreamError, f"the Dify plan quota is exhausted (app '{app}'): {detail}")
        return make(UpstreamError, f"Dify is busy: too many concurrent requests (app '{app}')", retryable=True)
    if status is not None and status >= 500:
        return make(UpstreamError, f"Dify failed with {status} (app '{app}'): {detail}", retryable=True)
    if status == 403:
        return make(UpstreamError, f"Dify refused access (app '{app}'): {detail}")
    label = code or (str(status) if status is not None else "error")
    return make(UpstreamError, f"Dify rejected the request ({label}, app '{app}'): {detail}")


def counts_against_app(error: UpstreamError) -> bool:
    """Whether an error says the app itself is down (trips its breaker), not just this request.

    Only signs of an app that is down for everyone count: no connection at all (refused, DNS,
    connect timeout: `unreachable`) and a 5xx answer before any byte of the stream. Dify's 429
    "too many concurrent requests", a stream that broke or failed midway, a read timeout, bad
    keys and configuration errors are per-request (or need a person, not a pause): they do not.
    """
    if isinstance(error, _PartialAnswerError):
        return False  # the stream had started: the app was up
    return error.unreachable or (error.upstream_status is not None and error.upstream_status >= 500)
