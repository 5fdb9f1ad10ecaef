"""A whole chat-platform adapter for the delivery engine, for a made-up "TinyChat" HTTP API:
what a new platform plugin writes (its calls, its limit, its escaping), and nothing else.

    POST   {base}/chats/{chat}/messages       {"text": …}  → {"id": "…"}
    PATCH  {base}/chats/{chat}/messages/{id}  {"text": …}
    DELETE {base}/chats/{chat}/messages/{id}
    429 with Retry-After when called too often.

(A plugin imports these names from `gateway.plugin` once it re-exports the engine.)
"""

from __future__ import annotations

import contextlib

import httpx

from gateway.delivery.chat import ChatRules, MessageRef, NativeStream
from gateway.exceptions import RateLimited
from gateway.retry_after import retry_after_seconds

RULES = ChatRules(
    limit=500,
    render=lambda markdown: markdown.replace("@", "@\u200b"),  # generated text never pings anyone
    placeholder="…thinking",
    empty_text="(no answer)",
)


class TinyChat:
    """The messages of one answer in one TinyChat chat."""

    rules = RULES
    original: MessageRef | None = None
    native: NativeStream | None = None  # TinyChat has no native streaming

    def __init__(self, http: httpx.AsyncClient, base_url: str, chat: str) -> None:
        self._http = http
        self._path = f"{base_url}/chats/{chat}/messages"

    async def post(self, text: str) -> MessageRef:
        return str(self._checked(await self._http.post(self._path, json={"text": text})).json()["id"])

    async def edit(self, ref: MessageRef, text: str) -> None:
        self._checked(await self._http.patch(f"{self._path}/{ref}", json={"text": text}))

    async def delete(self, ref: MessageRef) -> None:
        with contextlib.suppress(LookupError):  # already gone
            self._checked(await self._http.delete(f"{self._path}/{ref}"))

    def typing(self) -> contextlib.AbstractAsyncContextManager[object] | None:
        return None

    def writes_left(self) -> int | None:
        return None

    @staticmethod
    def _checked(response: httpx.Response) -> httpx.Response:
        if response.status_code == 429:
            raise RateLimited(
                "TinyChat rate limit", retry_after=retry_after_seconds(response.headers.get("retry-after"))
            )
        if response.status_code == 404:
            raise LookupError("no such message")
        response.raise_for_status()
        return response
