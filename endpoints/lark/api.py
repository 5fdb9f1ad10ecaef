"""A small Lark / Feishu Open API client over the gateway's shared httpx client.

Every answer is `{"code": 0, "msg": …, "data": …}`; a code other than 0 is a refusal.

- Rate limits: HTTP 429 or code 99991400 raise `RateLimited` with the wait Lark names
  (`x-ogw-ratelimit-reset`, else `Retry-After`); the chat-delivery engine waits it out on its
  clock and makes the same call again.
- 5xx answers, answers that are not JSON, timeouts and network errors are retried here after a
  growing backoff, a bounded number of times; the last failure says what happened and how often.
- A call refused because the tenant token is missing or no longer valid (99991661, 99991663, …)
  is made again once with a new token (`tokens.TenantTokens`).
- Other refusals raise `LarkAPIError` at once (its `code` and Lark's `msg`).

Tokens never appear in errors or logs (httpx's messages quote URLs only; no token is in a URL).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from endpoints.lark.settings import LarkSettings
from endpoints.lark.tokens import TenantTokens
from gateway.plugin import Clock, RateLimited, Storage, backoff_seconds, retry_after_seconds

__all__ = ["BOT_KEY", "RATE_LIMITED", "TOKEN_INVALID", "LarkAPI", "LarkAPIError", "bot_open_id", "open_api"]

RATE_LIMITED = 99991400
# The tenant token is missing, malformed, expired or revoked: fetch a new one and try again.
TOKEN_INVALID = frozenset({99991661, 99991663, 99991664, 99991665, 99991668})
USER_AGENT = "dify-gateway (lark)"


class LarkAPIError(Exception):
    """Lark refused a call (or could not be reached: `status` 0)."""

    def __init__(self, status: int, message: str, code: int | None = None) -> None:
        where = f"HTTP {status}" + (f", code {code}" if code is not None else "")
        super().__init__(f"Lark answered {where}: {message}" if status else message)
        self.status = status
        self.code = code
        self.message = message

    @property
    def retryable(self) -> bool:
        """Unreachable or failing on Lark's side: a later try may pass."""
        return self.status == 0 or self.status >= 500


def _json(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = response.json() if response.content else None
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _retry_after(response: httpx.Response) -> float:
    reset = response.headers.get("x-ogw-ratelimit-reset")
    return retry_after_seconds(reset if reset is not None else response.headers.get("retry-after"))


class LarkAPI:
    """Calls to `base_url` (…/open-apis) with the app's tenant token."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        *,
        clock: Clock,
        tokens: TenantTokens | None = None,
        attempts: int = 4,
        timeout: float = 15.0,
        fence: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._http = http
        self._base = base_url.rstrip("/")
        self._clock = clock
        self._tokens = tokens
        self._attempts = max(1, attempts)
        self._timeout = timeout
        self._fence = fence  # a job's fence: checked again before each retry (the engine checks the first try)

    @property
    def tokens(self) -> TenantTokens:
        if self._tokens is None:
            raise LarkAPIError(0, "no app credentials are configured")
        return self._tokens

    async def call(self, method: str, path: str, *, json: Any = None, auth: bool = True) -> dict[str, Any]:
        """Call the API; Lark's answer (`code` 0).

        Raises:
            RateLimited: Lark asked to wait.
            LarkAPIError: refused, or still failing after the attempts.
        """
        headers = {"user-agent": USER_AGENT}
        token = (await self.tokens.get()).token if auth else None
        renewed = False
        failure = LarkAPIError(0, "Lark could not be reached")
        for attempt in range(self._attempts):
            if attempt and self._fence is not None:
                await self._fence()
            if token is not None:
                headers["authorization"] = f"Bearer {token}"
            try:
                response = await self._http.request(
                    method, self._base + path, json=json, headers=headers, timeout=self._timeout
                )
            except httpx.TransportError as exc:
                kind = "did not answer in time" if isinstance(exc, httpx.TimeoutException) else "could not be reached"
                failure, delay = LarkAPIError(0, f"Lark {kind} ({exc.__class__.__name__})"), backoff_seconds(attempt)
            else:
                body = _json(response)
                code = body.get("code") if body is not None else None
                if response.status_code == 429 or code == RATE_LIMITED:
                    raise RateLimited("Lark asked to slow down", retry_after=_retry_after(response))
                if token is not None and code in TOKEN_INVALID and not renewed:
                    renewed = True  # once: a token refused twice is a configuration problem
                    token = (await self.tokens.get(stale=token)).token
                    continue
                if response.status_code >= 500 or body is None:
                    what = "an answer that is not JSON" if body is None else str(body.get("msg") or "error")[:200]
                    failure, delay = LarkAPIError(response.status_code, what), backoff_seconds(attempt)
                elif code == 0 and response.status_code < 400:
                    return body
                else:
                    message = str(body.get("msg") or response.reason_phrase or "error")[:200]
                    raise LarkAPIError(response.status_code, message, code if isinstance(code, int) else None)
            if attempt + 1 < self._attempts:
                await self._clock.sleep(delay)
        raise LarkAPIError(failure.status, f"{failure.message} ({self._attempts} tries)", failure.code)

    async def tenant_token(self, app_id: str, app_secret: str) -> tuple[str, float]:
        """A fresh tenant_access_token and the seconds it lives (`auth/v3/tenant_access_token/internal`)."""
        body = await self.call(
            "POST",
            "/auth/v3/tenant_access_token/internal",
            json={"app_id": app_id, "app_secret": app_secret},
            auth=False,
        )
        token, expire = body.get("tenant_access_token"), body.get("expire")
        if not isinstance(token, str) or not token or not isinstance(expire, int):
            raise LarkAPIError(200, "the token answer has no tenant_access_token")
        return token, float(expire)

    async def bot_info(self) -> dict[str, Any]:
        """The app's bot (`bot/v3/info`): its open_id, name and activation."""
        bot = (await self.call("GET", "/bot/v3/info")).get("bot")
        if not isinstance(bot, dict) or not isinstance(bot.get("open_id"), str):
            raise LarkAPIError(200, "the bot info has no open_id (is the bot capability enabled?)")
        return bot


BOT_KEY = "bot_open_id"
BOT_TTL = 24 * 3600.0


def open_api(
    http: httpx.AsyncClient,
    settings: LarkSettings,
    storage: Storage,
    clock: Clock,
    fence: Callable[[], Awaitable[None]] | None = None,
) -> LarkAPI:
    """The client of an endpoint: its base, its shared token cache, the job's fence."""
    unauthenticated = LarkAPI(http, settings.api_base, clock=clock)
    secret = settings.app_secret.get_secret_value()

    async def fetch() -> tuple[str, float]:
        return await unauthenticated.tenant_token(settings.app_id, secret)

    tokens = TenantTokens(storage, clock, secret, fetch)
    return LarkAPI(http, settings.api_base, clock=clock, tokens=tokens, fence=fence)


async def bot_open_id(api: LarkAPI, storage: Storage) -> str:
    """The bot's own open_id, cached for a day (the ingress reads it to skip group messages early)."""
    cached = await storage.get(BOT_KEY)
    if cached:
        return cached
    found: str = (await api.bot_info())["open_id"]
    await storage.set(BOT_KEY, found, ttl=BOT_TTL)
    return found
