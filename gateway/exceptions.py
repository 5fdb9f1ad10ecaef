"""The gateway's exception tree. Each maps to one HTTP status in `gateway.http.errors`.

    GatewayError                      500 (never shown with detail)
    ├── BadRequest                    400
    │   └── ValidationFailed          422
    ├── Unauthorized                  401
    ├── NotFound                      404
    ├── MethodNotAllowed              405  (allow: the methods the route does accept)
    ├── Conflict                      409
    │   └── LockBusy                       (a lock stayed held by someone else)
    ├── PayloadTooLarge               413
    ├── UnsupportedMediaType          415
    ├── RequestTimeout                408
    ├── RateLimited                   429  (retry_after)
    ├── BudgetExceeded                429  (a monthly usage budget is spent: no retry helps this month)
    ├── ClientClosedRequest           499  (the client left first: logged, never sent)
    ├── PermissionDenied              403  (a plugin used an undeclared permission; a viewer token wrote)
    ├── ConfigurationError            500  (bad settings; message is safe to show operators)
    ├── StoreError                    503
    ├── Overloaded                    503  (retry_after; this process is at its own limit, no upstream's fault)
    │   └── PluginUnavailable              (a Dify plugin's process is down or restarting)
    ├── UpstreamError                 502  (Dify or another upstream failed)
    │   ├── UpstreamTimeout           504
    │   ├── PluginFailed                   (a Dify plugin raised while answering)
    │   └── CircuitOpen               503
    └── JobSignal                     500  (a job handler's word to its worker, never an HTTP answer)
        ├── RetryJob                       (run the job again, after `after` seconds)
        └── JobError                       (retrying will not help: dead-letter the job)

Messages are written for the person reading them and never contain secrets. One exception is
deliberately outside the tree: `gateway.plugin.LeaseLost` is an `asyncio.CancelledError`, so that
`except Exception` (and `except GatewayError`) never swallows a run that must stop.
"""

from __future__ import annotations

from collections.abc import Collection

__all__ = [
    "BadRequest",
    "BudgetExceeded",
    "CircuitOpen",
    "ClientClosedRequest",
    "ConfigurationError",
    "Conflict",
    "GatewayError",
    "JobError",
    "JobSignal",
    "LockBusy",
    "MethodNotAllowed",
    "NotFound",
    "Overloaded",
    "PayloadTooLarge",
    "PermissionDenied",
    "PluginFailed",
    "PluginUnavailable",
    "RateLimited",
    "RequestTimeout",
    "RetryJob",
    "StoreError",
    "Unauthorized",
    "UnsupportedMediaType",
    "UpstreamError",
    "UpstreamTimeout",
    "ValidationFailed",
]


class GatewayError(Exception):
    """Root of every error the gateway raises on purpose."""

    status_code = 500
    code = "internal_error"

    def __init__(self, message: str = "", **context: object) -> None:
        super().__init__(message or self.code)
        self.message = message or self.code
        self.context = context


class BadRequest(GatewayError):
    status_code = 400
    code = "bad_request"


class ValidationFailed(BadRequest):
    status_code = 422
    code = "validation_failed"

    def __init__(self, message: str = "", errors: list[dict[str, object]] | None = None, **context: object) -> None:
        super().__init__(message, **context)
        self.errors = errors or []


class Unauthorized(GatewayError):
    status_code = 401
    code = "unauthorized"


class PermissionDenied(GatewayError):
    status_code = 403
    code = "permission_denied"


class NotFound(GatewayError):
    status_code = 404
    code = "not_found"


class MethodNotAllowed(GatewayError):
    """The route exists but not for this method; `allow` lists the methods it accepts."""

    status_code = 405
    code = "method_not_allowed"

    def __init__(self, message: str = "", allow: Collection[str] = (), **context: object) -> None:
        super().__init__(message, **context)
        self.allow = tuple(sorted(allow))


class Conflict(GatewayError):
    status_code = 409
    code = "conflict"


class LockBusy(Conflict):
    """A lock stayed held by someone else for as long as the caller was willing to wait."""


class RequestTimeout(GatewayError):
    status_code = 408
    code = "request_timeout"


class PayloadTooLarge(GatewayError):
    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaType(GatewayError):
    status_code = 415
    code = "unsupported_media_type"


class RateLimited(GatewayError):
    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str = "", retry_after: float = 1.0, **context: object) -> None:
        super().__init__(message, **context)
        self.retry_after = retry_after


class BudgetExceeded(GatewayError):
    """A usage budget (tokens or cost, per month) of the workspace, app or endpoint is spent.

    `budget` is the budget's id, `scope` what it limits ("app 'support'"), `period` the month
    ("2026-12") and `resets_at` when the next period starts (seconds since the epoch)."""

    status_code = 429
    code = "budget_exceeded"

    def __init__(self, message: str, *, budget: str, scope: str, period: str, resets_at: float) -> None:
        super().__init__(message, budget=budget, scope=scope, period=period)
        self.budget = budget
        self.scope = scope
        self.period = period
        self.resets_at = resets_at


class ClientClosedRequest(GatewayError):
    """The client disconnected before the answer was ready; its work was cancelled."""

    status_code = 499  # nginx's "client closed request", for the request log and metrics
    code = "client_closed_request"


class ConfigurationError(GatewayError):
    code = "configuration_error"


class StoreError(GatewayError):
    status_code = 503
    code = "store_unavailable"


class Overloaded(GatewayError):
    """This process has no capacity left for the call (answers running, connections to Dify).

    The gateway's own shortage: never counted against an app. Surfaces answer 503 with
    `Retry-After`; jobs run again after `retry_after` seconds.
    """

    status_code = 503
    code = "overloaded"

    def __init__(self, message: str = "", retry_after: float = 5.0, **context: object) -> None:
        super().__init__(message, **context)
        self.retry_after = retry_after


class PluginUnavailable(Overloaded):
    """A Dify plugin's process is not running (crashed, restarting, not started yet): 503 with `Retry-After`."""

    code = "plugin_unavailable"


class UpstreamError(GatewayError):
    """An upstream (Dify, a platform API) failed. `upstream_status` and `upstream_code` carry its answer;
    `unreachable` says no connection could be made at all."""

    status_code = 502
    code = "upstream_error"

    def __init__(
        self,
        message: str = "",
        *,
        upstream_status: int | None = None,
        upstream_code: str | None = None,
        retryable: bool = False,
        unreachable: bool = False,
        **context: object,
    ) -> None:
        super().__init__(message, **context)
        self.upstream_status = upstream_status
        self.upstream_code = upstream_code
        self.retryable = retryable
        # No connection could be made at all (refused, DNS, connect timeout): the upstream is down.
        self.unreachable = unreachable


class UpstreamTimeout(UpstreamError):
    status_code = 504
    code = "upstream_timeout"


class PluginFailed(UpstreamError):
    """A Dify plugin raised while answering: the caller gets 502 and this message, never the exception's text."""

    code = "plugin_error"


class CircuitOpen(UpstreamError):
    status_code = 503
    code = "circuit_open"


class JobSignal(GatewayError):
    """Raised by a job handler to tell its worker what to do with the job. Reaching HTTP instead
    (a route raised it), it is an opaque 500: its message is for the job's record, not a caller."""

    code = "job_signal"


class RetryJob(JobSignal):
    """Raised by a job handler to run the job again after `after` seconds (counts as an attempt)."""

    code = "retry_job"

    def __init__(self, reason: str = "", after: float | None = None, **context: object) -> None:
        super().__init__(reason or "retry requested", **context)
        self.after = after


class JobError(JobSignal):
    """Raised by a job handler for a failure that retrying will not fix: the job is dead-lettered."""

    code = "job_error"
