"""The Slack Web API as the answering jobs use it: slack_sdk's `AsyncWebClient`, one aiohttp
session per job, 429s, 5xx, timeouts and unreadable answers retried on the injected clock,
failures mapped to job outcomes.

The messages of an answer are the delivery engine's (`thread.py` is Slack's adapter); a 429 that
outlasts the client's retries reaches it as `RateLimited` (`rate_limited`).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient

from endpoints.slack.settings import SlackSettings
from gateway.plugin import (
    Clock,
    Context,
    JobError,
    RateLimited,
    RetryJob,
    Storage,
    backoff_seconds,
    retry_after_seconds,
)

__all__ = [
    "ClockRetryHandler",
    "GatewayWebClient",
    "bot_user_id",
    "open_client",
    "rate_limited",
    "slack_failures",
]

# Errors no retry will fix: the token, the scopes or the channel are wrong.
FATAL_ERRORS = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "missing_scope",
        "no_permission",
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "team_access_not_granted",
        "restricted_action",
        "ekm_access_denied",
    }
)
BOT_USER_TTL = 24 * 3600.0


# Slack's own "try again later" errors, sent as JSON with HTTP 200.
SERVER_ERRORS = frozenset({"internal_error", "fatal_error", "service_unavailable"})
# Set on an answer that was not Slack's JSON (see `GatewayWebClient`).
UNREADABLE = "unreadable_answer"
RETRIES = 4
TIMEOUT_S = 30.0


class ClockRetryHandler(AsyncRetryHandler):
    """Retries, on the gateway's clock, every Slack answer that may pass later: a 429 after its
    `Retry-After`; a 5xx, an answer that is not JSON, Slack's own server errors, a timeout or a
    connection error after a growing backoff. (slack_sdk's handlers sleep on asyncio with jitter,
    which tests could not control, and let a 502 HTML page through as an unreadable answer.)
    `fence` is checked again after each wait, which may have outlasted the job's lease."""

    def __init__(
        self, clock: Clock, max_retry_count: int = RETRIES, fence: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self._clock = clock
        self._fence = fence

    async def _can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if error is not None:
            # SlackApiError here: a body that claimed to be JSON and was not.
            return isinstance(error, aiohttp.ClientError | TimeoutError | SlackApiError)
        if response is None:
            return False
        if response.status_code == 429 or response.status_code >= 500:
            return True
        if response.body is None:  # not JSON (a 200 with text or bytes is an upload's or a download's answer)
            return response.status_code != 200 or response.data is None
        return response.body.get("error") in SERVER_ERRORS

    async def prepare_for_next_attempt_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        state.next_attempt_requested = True
        if response is not None and response.status_code == 429:
            delay = retry_after_seconds(_retry_after(response.headers))
        else:
            delay = backoff_seconds(state.current_attempt)
        await self._clock.sleep(delay)
        if self._fence is not None:  # the wait may have outlasted the job's lease
            await self._fence()
        state.increment_current_attempt()


class GatewayWebClient(AsyncWebClient):
    """slack_sdk's client, except that an answer that is not Slack's JSON (an HTML error page from
    a proxy, a plain-text 5xx) becomes a clean `SlackApiError` ("unreadable_answer", with the HTTP
    status) instead of an `AttributeError` deep inside slack_sdk."""

    async def _request(self, *, http_verb: str, api_url: str, req_args: dict[str, Any]) -> dict[str, Any]:
        response: dict[str, Any] = await super()._request(http_verb=http_verb, api_url=api_url, req_args=req_args)
        data = response.get("data")
        if response.get("status_code") != 200 and not (isinstance(data, dict) and data):
            response["data"] = {"ok": False, "error": UNREADABLE}
        return response


@contextlib.asynccontextmanager
async def open_client(
    settings: SlackSettings,
    clock: Clock,
    fence: Callable[[], Awaitable[None]] | None = None,
    *,
    timeout: float = TIMEOUT_S,
    connector: aiohttp.BaseConnector | None = None,
) -> AsyncIterator[AsyncWebClient]:
    """An `AsyncWebClient` on its own aiohttp session, closed when the job is done; each call gives
    up after `timeout` seconds and is retried (see `ClockRetryHandler`); `fence` is checked again
    before a call is retried. `connector`: `ctx.aiohttp_connector()`, so the session's connections
    pass the gateway's upstream checks (the session closes it)."""
    if settings.bot_token is None:
        if connector is not None:
            await connector.close()
        raise JobError("bot_token is not set on this endpoint")
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        yield GatewayWebClient(
            token=settings.bot_token.get_secret_value(),
            base_url=settings.api_base_url + "/",
            session=session,
            timeout=int(max(timeout, 1)),
            retry_handlers=[ClockRetryHandler(clock, fence=fence)],
        )


def _retry_after(headers: Any) -> str | None:
    for name, value in dict(headers or {}).items():
        if name.lower() == "retry-after":
            return str(value[0] if isinstance(value, list) else value)
    return None


def rate_limited(exc: SlackApiError) -> RateLimited | None:
    """Slack's 429 as the gateway's `RateLimited` (with its Retry-After); None for other errors."""
    if exc.response.status_code != 429 and exc.response.get("error") != "ratelimited":
        return None
    return RateLimited("Slack rate limit", retry_after=retry_after_seconds(_retry_after(exc.response.headers)))


@contextlib.asynccontextmanager
async def slack_failures(ctx: Context[SlackSettings]) -> AsyncIterator[None]:
    """Map Slack failures to job outcomes: retry what may pass, dead-letter what can't.

    Every failure here already came back after the client's own retries (`ClockRetryHandler`), so
    the reason says so: it is the job's error when it ends up a dead letter.
    """
    tries = f"{RETRIES + 1} tries"
    try:
        yield
    except RateLimited as exc:
        raise RetryJob("Slack rate limit", after=exc.retry_after) from None
    except SlackApiError as exc:
        status = exc.response.status_code
        error = str(exc.response.get("error") or "unknown_error")
        if (limited := rate_limited(exc)) is not None:
            raise RetryJob("Slack rate limit", after=limited.retry_after) from None
        if error in FATAL_ERRORS:
            ctx.logger.error("Slack refused the answer: %s (check the bot token, scopes and channel)", error)
            raise JobError(f"Slack refused: {error}") from None
        if error == UNREADABLE:
            raise RetryJob(f"Slack answered HTTP {status} with something other than its JSON ({tries})") from None
        if status >= 500 or error in SERVER_ERRORS:
            raise RetryJob(f"Slack failed: HTTP {status}, {error} ({tries})") from None
        raise RetryJob(f"Slack API error: {error}") from None
    except (aiohttp.ClientError, TimeoutError) as exc:
        kind = "did not answer in time" if isinstance(exc, TimeoutError) else "could not be reached"
        raise RetryJob(f"Slack {kind} ({exc.__class__.__name__}, {tries})") from None


async def bot_user_id(client: AsyncWebClient, storage: Storage) -> str | None:
    """The bot's own user id (`auth.test`), cached for a day."""
    cached = await storage.get("bot_user_id")
    if cached:
        return cached
    found = (await client.auth_test()).get("user_id")
    if isinstance(found, str) and found:
        await storage.set("bot_user_id", found, ttl=BOT_USER_TTL)
        return found
    return None
