"""The example adapter (`tiny_chat.py`) against a fake TinyChat API, through real httpx."""

from __future__ import annotations

import json

import httpx
import pytest

from gateway.delivery.chat import MemoryMessages, deliver
from tests.gateway.delivery.chat_fakes import FakeAnswer, VirtualClock, text
from tests.gateway.delivery.tiny_chat import TinyChat

pytestmark = pytest.mark.anyio


class TinyChatAPI:
    """The platform: messages by id; the first PATCH is answered 429 (Retry-After: 3)."""

    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        self.messages: dict[str, str] = {}
        self.requests: list[tuple[str, float]] = []
        self.limited = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((request.method, self.clock.monotonic()))
        parts = request.url.path.split("/")  # /chats/{chat}/messages[/{id}]
        if request.method == "PATCH" and not self.limited:
            self.limited = True
            return httpx.Response(429, headers={"retry-after": "3"})
        if request.method == "POST":
            ref = str(len(self.messages) + 1)
            self.messages[ref] = json.loads(request.content)["text"]
            return httpx.Response(200, json={"id": ref})
        if parts[-1] not in self.messages:
            return httpx.Response(404)
        if request.method == "PATCH":
            self.messages[parts[-1]] = json.loads(request.content)["text"]
        else:
            del self.messages[parts[-1]]
        return httpx.Response(204)


async def test_an_answer_through_the_tiny_chat_adapter() -> None:
    clock = VirtualClock()
    api = TinyChatAPI(clock)
    answer_text = "Ask @everyone: " + " ".join(f"word{i}" for i in range(150))
    chunks = [answer_text[i : i + 60] for i in range(0, len(answer_text), 60)]

    async with httpx.AsyncClient(transport=httpx.MockTransport(api)) as http:
        done = await deliver(
            FakeAnswer(clock, text(*chunks, delay=0.4)),
            TinyChat(http, "https://tiny.example/api", "c1"),
            clock=clock,
            posted=MemoryMessages(),
        )

    pages = list(api.messages.values())
    assert done.messages == len(pages) >= 3 and all(len(p) <= 500 for p in pages)
    assert " ".join(pages).split() == answer_text.replace("@", "@\u200b").split()
    patches = [at for method, at in api.requests if method == "PATCH"]
    assert patches[1] - patches[0] >= 3.0  # the 429's Retry-After was waited out, then the edit made again
