"""The one place where exceptions become HTTP responses: a JSON error, never a stack trace."""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from gateway.exceptions import (
    BadRequest,
    BudgetExceeded,
    GatewayError,
    JobSignal,
    MethodNotAllowed,
    Overloaded,
    RateLimited,
    ValidationFailed,
)
from gateway.retry_after import retry_after_header
from gateway.security.tokens import redact_path

__all__ = ["error_payload", "error_response", "exception_handlers", "handle_error"]

logger = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
    429: "rate_limited",
}


def error_payload(code: str, message: str, **extra: object) -> dict[str, object]:
    return {"error": {"code": code, "message": message, **extra}}


def error_response(exc: Exception, headers: dict[str, str] | None = None) -> Response:
    """Map an exception to its JSON response. Unexpected exceptions become an opaque 500."""
    headers = dict(headers or {})
    if isinstance(exc, GatewayError):
        extra: dict[str, object] = {}
        if isinstance(exc, ValidationFailed) and exc.errors:
            extra["errors"] = exc.errors
        if isinstance(exc, RateLimited | Overloaded):
            headers["retry-after"] = retry_after_header(exc.retry_after)
        if isinstance(exc, MethodNotAllowed):
            headers["allow"] = ", ".join(exc.allow)
        if isinstance(exc, BudgetExceeded):  # no Retry-After: nothing changes before `resets_at`
            extra.update(budget=exc.budget, period=exc.period, resets_at=exc.resets_at)
        # Messages of the tree are written to be shown; only the bare root stays opaque, and so do
        # a job's signals (their messages are for the job's record, not for a caller).
        if type(exc) is GatewayError or isinstance(exc, JobSignal):
            return JSONResponse(error_payload("internal_error", "internal error"), 500, headers=headers)
        return JSONResponse(error_payload(exc.code, exc.message, **extra), exc.status_code, headers=headers)
    if isinstance(exc, HTTPException):
        if exc.headers:
            headers.update(exc.headers)
        code = _HTTP_CODES.get(exc.status_code, "error")
        return JSONResponse(error_payload(code, str(exc.detail)), exc.status_code, headers=headers)
    return JSONResponse(error_payload("internal_error", "internal error"), 500, headers=headers)


def handle_error(exc: Exception, where: str) -> Response:
    """Log `exc` as it deserves (a traceback only for what nobody raised on purpose) and map it.

    `where` says what failed, for the log (`POST /admin/apps`, `endpoint ep_1 (plugin slack)`);
    it must not carry secrets (an endpoint URL's path does: redact it).
    """
    if isinstance(exc, ClientDisconnect):  # the client hung up mid-body: nothing failed here
        exc = BadRequest("the client disconnected before the whole body arrived")
    if not isinstance(exc, GatewayError | HTTPException):
        logger.exception("unhandled error on %s", where)
    elif isinstance(exc, GatewayError) and exc.status_code >= 500:
        logger.error("%s on %s: %s", exc.code, where, exc.message)
    return error_response(exc)


async def _handle(request: Request, exc: Exception) -> Response:
    return handle_error(exc, f"{request.method} {redact_path(request.url.path)}")


# ClientDisconnect by name: the `Exception` handler runs in ServerErrorMiddleware, which re-raises.
exception_handlers = {GatewayError: _handle, HTTPException: _handle, ClientDisconnect: _handle, Exception: _handle}
