"""The one place where exceptions become HTTP responses: a JSON error, never a stack trace."""

from __future__ import annotations

import logging
import math

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from gateway.exceptions import BadRequest, GatewayError, Overloaded, RateLimited, ValidationFailed
from gateway.security.tokens import redact_path

__all__ = ["error_payload", "error_response", "exception_handlers"]

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
            headers["retry-after"] = str(max(1, math.ceil(exc.retry_after)))
        status = exc.status_code
        # Messages of the tree are written to be shown; only the bare root stays opaque.
        message = "internal error" if type(exc) is GatewayError else exc.message
        return JSONResponse(error_payload(exc.code, message, **extra), status, headers=headers)
    if isinstance(exc, HTTPException):
        if exc.headers:
            headers.update(exc.headers)
        code = _HTTP_CODES.get(exc.status_code, "error")
        return JSONResponse(error_payload(code, str(exc.detail)), exc.status_code, headers=headers)
    return JSONResponse(error_payload("internal_error", "internal error"), 500, headers=headers)


async def _handle(request: Request, exc: Exception) -> Response:
    if isinstance(exc, ClientDisconnect):  # the client hung up mid-body: nothing failed here
        exc = BadRequest("the client disconnected before the whole body arrived")
    if not isinstance(exc, GatewayError | HTTPException):
        logger.exception("unhandled error on %s %s", request.method, redact_path(request.url.path))
    elif isinstance(exc, GatewayError) and exc.status_code >= 500:
        logger.error("%s on %s %s: %s", exc.code, request.method, redact_path(request.url.path), exc.message)
    return error_response(exc)


# ClientDisconnect by name: the `Exception` handler runs in ServerErrorMiddleware, which re-raises.
exception_handlers = {GatewayError: _handle, HTTPException: _handle, ClientDisconnect: _handle, Exception: _handle}
