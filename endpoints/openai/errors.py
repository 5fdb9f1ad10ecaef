"""OpenAI error objects: `{"error": {"message", "type", "param", "code"}}` with the right status.

Every failure this plugin reports, before or inside a stream, goes through `OpenAIError`, so the
official SDKs raise their own exception classes (401 `AuthenticationError`, 404 `NotFoundError`,
400 `BadRequestError`, 429 `RateLimitError`, 5xx `InternalServerError`; an overloaded gateway is
503 with `Retry-After`, which the SDKs retry). Dify's own messages go to
the log, never to the client (openai-compat.md §6).
"""

from __future__ import annotations

import json
from typing import Any

from gateway.plugin import (
    BadRequest,
    BudgetExceeded,
    GatewayError,
    NotFound,
    Overloaded,
    RateLimited,
    Response,
    Unauthorized,
    UpstreamError,
    retry_after_header,
)

__all__ = ["OpenAIError", "from_exception", "json_response", "model_not_found"]


def json_response(data: Any, status: int = 200, headers: list[tuple[str, str]] | None = None) -> Response:
    """JSON as UTF-8; a lone surrogate (possible in JSON text) becomes '?' instead of failing."""
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "replace")
    return Response(status, body, list(headers or []), "application/json")


class OpenAIError(Exception):
    """An error as the OpenAI API reports it."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
        retry: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.retry_after = retry_after
        self.retry = retry  # said to the SDKs in `x-should-retry`, which they obey before the status

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> Response:
        headers = []
        if self.retry_after is not None:
            headers.append(("retry-after", retry_after_header(self.retry_after)))
        if self.retry is not None:
            headers.append(("x-should-retry", "true" if self.retry else "false"))
        return json_response(self.body(), self.status, headers)


def model_not_found(model: str) -> OpenAIError:
    return OpenAIError(
        404,
        f"The model '{model}' does not exist or you do not have access to it.",
        param="model",
        code="model_not_found",
    )


def _upstream(exc: UpstreamError) -> OpenAIError:
    """Dify failures (openai-compat.md §6): our stored app key or the app's config are never the client's fault."""
    if exc.status_code == 504:
        return OpenAIError(504, "The Dify app did not answer in time.", type="server_error", code="timeout")
    if exc.upstream_status == 429:
        if exc.upstream_code == "rate_limit_error":
            return OpenAIError(
                429, "The Dify plan quota is exhausted.", type="insufficient_quota", code="insufficient_quota"
            )
        return OpenAIError(
            429, "The Dify app is busy; retry later.", type="requests", code="rate_limit_exceeded", retry_after=1
        )
    if exc.status_code == 503:  # the breaker is open: the app failed repeatedly
        return OpenAIError(
            503,
            "The Dify app is failing; retry later.",
            type="server_error",
            code="upstream_unavailable",
            retry_after=5,
        )
    return OpenAIError(502, "The Dify app failed to answer.", type="server_error", code="upstream_error")


def from_exception(exc: BaseException) -> OpenAIError:
    """The OpenAI error for anything a handler may raise (unexpected ones become an opaque 500)."""
    if isinstance(exc, OpenAIError):
        return exc
    if isinstance(exc, UpstreamError):
        return _upstream(exc)
    if isinstance(exc, Overloaded):  # the gateway is full; the SDK retries 503s after Retry-After
        return OpenAIError(
            503,
            "The gateway is overloaded; retry later.",
            type="server_error",
            code="overloaded",
            retry_after=exc.retry_after,
        )
    if isinstance(exc, BudgetExceeded):  # spent for the month: the SDKs must not retry a 429 that can't pass
        return OpenAIError(429, exc.message, type="insufficient_quota", code="insufficient_quota", retry=False)
    if isinstance(exc, RateLimited):
        return OpenAIError(429, exc.message, type="requests", code="rate_limit_exceeded", retry_after=exc.retry_after)
    if isinstance(exc, Unauthorized):
        return OpenAIError(401, exc.message, code="invalid_api_key")
    if isinstance(exc, NotFound):
        return OpenAIError(404, exc.message, code="not_found")
    if isinstance(exc, BadRequest):
        return OpenAIError(400, exc.message)
    if isinstance(exc, GatewayError) and 400 <= type(exc).status_code < 500:
        return OpenAIError(type(exc).status_code, exc.message)
    return OpenAIError(500, "Internal error.", type="server_error", code="internal_error")
