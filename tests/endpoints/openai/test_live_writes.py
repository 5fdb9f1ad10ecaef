"""How a streamed chat completion is written: frames of Dify events that arrived together go out
in one write, the first frame at once, and the bytes are the same as one write per frame."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tests.endpoints.openai.stack import FAST, Stack, openai_stack

pytestmark = [pytest.mark.anyio, pytest.mark.live]

ANSWER = "one two three four five six seven eight nine ten"


def in_one_write(app: ASGIApp) -> ASGIApp:
    """A simulator whose whole streamed answer leaves in one body message (one read on our side)."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        held: list[bytes] = []

        async def hold(message: Message) -> None:
            if message["type"] != "http.response.body":
                await send(message)
                return
            held.append(message.get("body", b""))
            if not message.get("more_body", False):
                await send({"type": "http.response.body", "body": b"".join(held), "more_body": False})

        await app(scope, receive, hold)

    return wrapped


class Writes:
    """Wraps the gateway: the body writes of its chat completion responses, in order."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    def wrap(self, app: ASGIApp) -> ASGIApp:
        async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http" or not scope["path"].endswith("/chat/completions"):
                await app(scope, receive, send)
                return

            async def record(message: Message) -> None:
                if message["type"] == "http.response.body" and message.get("body"):
                    self.bodies.append(message["body"])
                await send(message)

            await app(scope, receive, record)

        return wrapped


@pytest.fixture
async def stack_and_writes(tmp_path: Path) -> AsyncIterator[tuple[Stack, Writes]]:
    writes = Writes()
    config = dataclasses.replace(FAST, answer=ANSWER)
    async with openai_stack(
        tmp_path, {"support": config}, wrappers={"support": in_one_write}, gateway_wrapper=writes.wrap
    ) as stack:
        yield stack, writes


async def test_events_that_arrive_together_are_written_together(stack_and_writes: tuple[Stack, Writes]) -> None:
    stack, writes = stack_and_writes
    body = {"model": "support", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    response = await stack.http.post(
        f"{stack.base_url}/chat/completions", json=body, headers={"authorization": f"Bearer {stack.key}"}
    )
    assert response.status_code == 200
    raw = response.content
    assert b"".join(writes.bodies) == raw  # nothing but the writes, in order
    blocks = [block for block in raw.split(b"\n\n") if block]
    tokens = [
        json.loads(block[6:])["choices"][0]["delta"].get("content") for block in blocks if block.startswith(b"data: {")
    ]
    text = "".join(token or "" for token in tokens)
    assert len([t for t in tokens if t]) > 5 and blocks[-1] == b"data: [DONE]"
    # The first content frame went out on its own, at once; the rest of the answer, which came
    # in the same read, in one write; then the end (finish chunk and [DONE]) in one more.
    first = writes.bodies[0]
    assert first.count(b"data: ") == 1 and b'"content":' in first
    assert len(writes.bodies) <= 3, [w[:60] for w in writes.bodies]
    assert text  # the answer itself is checked, byte for byte, by the chat tests
