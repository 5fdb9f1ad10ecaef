"""A thin Bot API client over the gateway's shared httpx client: `POST {base}/bot{token}/{method}`.

Every answer is `{"ok": true, "result": …}` or `{"ok": false, "error_code", "description",
"parameters"}`. A 429 (or `parameters.retry_after`) is raised as `RateLimited` with Telegram's
wait: the chat-delivery engine waits it out on its clock and makes the same call again. 5xx
answers, answers that are not JSON, timeouts and network errors are retried here after a
growing backoff, a bounded number of times. Other refusals raise `TelegramError` at once.

The bot token is part of every URL: neither URLs nor httpx's messages (which quote the URL) go
into errors or logs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from gateway.plugin import Clock, RateLimited, backoff_seconds, retry_after_seconds

__all__ = ["TelegramAPI", "TelegramError"]


class TelegramError(Exception):
    """Telegram refused a call (or could not be reached: `status` 0)."""

    def __init__(self, status: int, description: str) -> None:
        super().__init__(f"Telegram answered {status}: {description}" if status else description)
        self.status = status
        self.description = description

    @property
    def bad_markup(self) -> bool:
        """The text's HTML was refused ("Bad Request: can't parse entities: …")."""
        return self.status == 400 and "can't parse entities" in self.description.lower()

    @property
    def not_modified(self) -> bool:
        """An edit to the text the message shows already: nothing to do."""
        return self.status == 400 and "message is not modified" in self.description.lower()

    @property
    def gone(self) -> bool:
        """The message to edit or delete no longer exists."""
        text = self.description.lower()
        return self.status == 400 and ("message to delete not found" in text or "message to edit not found" in text)


def _body(response: httpx.Response) -> dict[str, Any] | None:
    try:
        doc = response.json()
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


class TelegramAPI:
    """Bot API calls with one bot's token, against `base_url` (https://api.telegram.org)."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        token: str,
        *,
        clock: Clock,
        attempts: int = 4,
        timeout: float = 15.0,
        fence: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self._http = http
        self._base = base_url.rstrip("/")
        self._token = token
        self._clock = clock
        self._attempts = max(1, attempts)
        self._timeout = timeout
        self._fence = fence  # a job's fence: checked again before each retry (the engine checks the first try)

    async def call(self, method: str, **params: Any) -> Any:
        """Call `method` with `params` (None values left out); its `result`.

        Raises:
            RateLimited: Telegram asked to wait (`retry_after` seconds).
            TelegramError: refused, or still failing after the attempts.
        """
        body = {name: value for name, value in params.items() if value is not None}
        url = f"{self._base}/bot{self._token}/{method}"
        failure = TelegramError(0, "Telegram could not be reached")
        for attempt in range(self._attempts):
            if attempt and self._fence is not None:
                await self._fence()
            try:
                response = await self._http.post(url, json=body, timeout=self._timeout)
            except httpx.TransportError as exc:
                kind = "did not answer in time" if isinstance(exc, httpx.TimeoutException) else "could not be reached"
                failure = TelegramError(0, f"Telegram {kind} ({exc.__class__.__name__})")
            else:
                doc = _body(response)
                parameters = doc.get("parameters") if doc is not None else None
                wait = parameters.get("retry_after") if isinstance(parameters, dict) else None
                if response.status_code == 429 or wait is not None:
                    raise RateLimited(
                        "Telegram asked to slow down",
                        retry_after=retry_after_seconds(response.headers.get("retry-after") if wait is None else wait),
                    )
                if doc is None:
                    failure = TelegramError(response.status_code, "an answer that is not JSON")
                elif response.status_code < 500:
                    if doc.get("ok") is True:
                        return doc.get("result")
                    raise TelegramError(response.status_code, str(doc.get("description") or "refused")[:300])
                else:
                    failure = TelegramError(response.status_code, str(doc.get("description") or "server error")[:300])
            if attempt + 1 < self._attempts:
                await self._clock.sleep(backoff_seconds(attempt))
        raise TelegramError(failure.status, f"{failure.description} ({self._attempts} tries)")

    async def download(self, file_id: str, *, max_bytes: int) -> tuple[bytes, str]:
        """A file a user sent (`getFile`, then `{base}/file/bot{token}/{file_path}`): its bytes and path.

        Raises `TelegramError` (413 when it is larger than `max_bytes`)."""
        info = await self.call("getFile", file_id=file_id)
        path = info.get("file_path") if isinstance(info, dict) else None
        size = info.get("file_size") if isinstance(info, dict) else None
        if not isinstance(path, str) or not path:
            raise TelegramError(0, "Telegram gave no path for the file (larger than 20 MB?)")
        if isinstance(size, int) and size > max_bytes:
            raise TelegramError(413, f"the file is {size} bytes, more than {max_bytes}")
        try:
            async with self._http.stream(
                "GET", f"{self._base}/file/bot{self._token}/{path}", timeout=self._timeout
            ) as response:
                if response.status_code != 200:
                    raise TelegramError(response.status_code, "the file could not be downloaded")
                content = b""
                async for chunk in response.aiter_bytes():
                    content += chunk
                    if len(content) > max_bytes:
                        raise TelegramError(413, f"the file is more than {max_bytes} bytes")
        except httpx.TransportError as exc:
            raise TelegramError(0, f"the file could not be downloaded ({exc.__class__.__name__})") from None
        return content, path
