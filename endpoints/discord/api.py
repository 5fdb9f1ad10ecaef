"""A small Discord REST client over the gateway's shared httpx client.

Rate limits (platforms.md §2.4): a 429 carries `retry_after` (seconds) in its JSON body and a
`Retry-After` header; it is raised as `RateLimited` with that wait, and the chat-delivery engine
waits it out on its clock and makes the same call again. 5xx answers, answers that are not JSON
(an HTML page from a proxy), timeouts and network errors are retried here after a growing
backoff, with a bounded number of attempts; the last failure says what happened and how often.
Other 4xx answers raise `DiscordAPIError` at once (retrying 401/403 only adds to Discord's
invalid-request count).

Interaction webhook URLs contain the interaction token: neither URLs nor httpx's messages (which
quote the URL) ever go into errors or logs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from gateway.plugin import Clock, RateLimited, backoff_seconds, retry_after_seconds

__all__ = ["DiscordAPI", "DiscordAPIError", "message_id", "retry_after"]

USER_AGENT = "DiscordBot (https://github.com/dify-gateway/dify-gateway, 0.1)"


class DiscordAPIError(Exception):
    """Discord refused a call (or could not be reached: `status` 0)."""

    def __init__(self, status: int, message: str, code: int | None = None) -> None:
        super().__init__(f"Discord answered {status}: {message}" if status else message)
        self.status = status
        self.code = code
        self.message = message


def _json(response: httpx.Response) -> Any:
    try:
        return response.json() if response.content else None
    except ValueError:
        return None


def retry_after(response: httpx.Response) -> float:
    """Seconds to wait after a 429: the body's `retry_after`, else `Retry-After`, else 1; capped at 60."""
    body = _json(response)
    value = body.get("retry_after") if isinstance(body, dict) else None
    return retry_after_seconds(response.headers.get("retry-after") if value is None else value)


def message_id(message: Any) -> str:
    """The id of a message Discord sent back."""
    if isinstance(message, dict) and message.get("id"):
        return str(message["id"])
    raise DiscordAPIError(0, "Discord sent a message without an id")


def _error(response: httpx.Response) -> DiscordAPIError:
    body = _json(response)
    message = body.get("message") if isinstance(body, dict) else None
    code = body.get("code") if isinstance(body, dict) else None
    if not message and response.content and body is None:
        message = f"{response.reason_phrase or 'error'}, and not JSON"
    return DiscordAPIError(
        response.status_code,
        str(message)[:200] if message else response.reason_phrase or "error",
        code if isinstance(code, int) else None,
    )


class DiscordAPI:
    """Calls to `base_url` (e.g. https://discord.com/api/v10); `bot_token` for bot-authenticated routes."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        *,
        clock: Clock,
        bot_token: str | None = None,
        attempts: int = 5,
        timeout: float = 15.0,
        fence: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._http = http
        self._fence = fence  # a job's fence: checked again before each retry (the engine checks the first try)
        self._base = base_url.rstrip("/")
        self._clock = clock
        self._bot_token = bot_token
        self._attempts = max(1, attempts)
        self._timeout = timeout

    @property
    def has_bot_token(self) -> bool:
        return bool(self._bot_token)

    async def request(self, method: str, path: str, *, json: Any = None, bot: bool = False) -> Any:
        """Call the API; the decoded JSON answer (None when empty).

        Raises:
            RateLimited: Discord asked to wait (`retry_after` seconds).
            DiscordAPIError: refused, or still failing after the attempts.
        """
        headers = {"user-agent": USER_AGENT}
        if bot:
            if not self._bot_token:
                raise DiscordAPIError(0, "no bot token is configured")
            headers["authorization"] = f"Bot {self._bot_token}"
        failure = DiscordAPIError(0, "Discord could not be reached")
        for attempt in range(self._attempts):
            if attempt and self._fence is not None:
                await self._fence()
            try:
                response = await self._http.request(
                    method, self._base + path, json=json, headers=headers, timeout=self._timeout
                )
            except httpx.TransportError as exc:
                # The message of a transport error quotes the URL (with the token): keep only its kind.
                kind = "did not answer in time" if isinstance(exc, httpx.TimeoutException) else "could not be reached"
                failure = DiscordAPIError(0, f"Discord {kind} ({exc.__class__.__name__})")
                delay = backoff_seconds(attempt)
            else:
                if response.status_code == 429:
                    raise RateLimited("Discord asked to slow down", retry_after=retry_after(response))
                if response.status_code >= 500:
                    failure, delay = _error(response), backoff_seconds(attempt)
                elif response.status_code >= 400:
                    raise _error(response)
                else:
                    try:
                        return response.json() if response.content else None
                    except ValueError:  # e.g. a proxy's HTML page: Discord itself always answers JSON
                        failure = DiscordAPIError(response.status_code, "an answer that is not JSON")
                        delay = backoff_seconds(attempt)
            if attempt + 1 < self._attempts:
                await self._clock.sleep(delay)
        raise DiscordAPIError(failure.status, f"{failure.message} ({self._attempts} tries)", failure.code)

    # -- commands ---------------------------------------------------------------------------------

    async def put_commands(
        self, application_id: str, commands: list[dict[str, Any]], guild_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Bulk-overwrite the application's global (or one guild's) commands."""
        where = f"/guilds/{guild_id}" if guild_id else ""
        result = await self.request("PUT", f"/applications/{application_id}{where}/commands", json=commands, bot=True)
        return list(result or [])
