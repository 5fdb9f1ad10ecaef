"""Helpers for Dify client tests: SSE bodies split mid-line and mid-UTF-8, a FakeClock client."""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import respx

from gateway.clock import FakeClock
from gateway.dify import DifyApp, DifyClient, RetryPolicy
from gateway.dify.models import AppMode

BASE = "https://dify.test/v1"
CHAT = {"conversation_id": "conv-1", "message_id": "msg-1", "created_at": 1705395332, "task_id": "task-1"}
FLOW = {"task_id": "task-1", "workflow_run_id": "run-1"}
USAGE = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15, "total_price": "0.0001", "currency": "USD"}
PING = "event: ping\r\n\r\n"


def app(mode: AppMode = "chat", name: str = "support", **kw: Any) -> DifyApp:
    return DifyApp(name=name, base_url=kw.pop("base_url", BASE), api_key="app-secret", mode=mode, **kw)


def msg(answer: str, event: str = "message", **kw: Any) -> dict[str, Any]:
    return {"event": event, "id": "msg-1", "answer": answer, **CHAT, **kw}


def end(**kw: Any) -> dict[str, Any]:
    return {
        "event": "message_end",
        "id": "msg-1",
        **CHAT,
        "metadata": {"usage": USAGE, "retriever_resources": []},
        **kw,
    }


def sse_bytes(*blocks: dict[str, Any] | str, crlf: bool = False) -> bytes:
    sep = "\r\n" if crlf else "\n"
    out = []
    for block in blocks:
        out.append(block if isinstance(block, str) else f"data: {json.dumps(block, ensure_ascii=False)}{sep}{sep}")
    return "".join(out).encode()


async def chunked(data: bytes, size: int = 7) -> AsyncIterator[bytes]:
    """Cut into small pieces: lines and multi-byte characters end up split across chunks."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


def sse_response(*blocks: dict[str, Any] | str, crlf: bool = False, size: int = 7) -> httpx.Response:
    return httpx.Response(
        200, headers={"content-type": "text/event-stream"}, content=chunked(sse_bytes(*blocks, crlf=crlf), size)
    )


def envelope(status: int, code: str, message: str = "x") -> httpx.Response:
    return httpx.Response(status, json={"code": code, "message": message, "status": status})


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as mock:
        yield mock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def make_client(http: httpx.AsyncClient, clock: FakeClock) -> Any:
    def make(**kw: Any) -> DifyClient:
        kw.setdefault("retry", RetryPolicy(max_attempts=3, base_delay=0.5))
        return DifyClient(http, clock=clock, rng=random.Random(7), **kw)

    return make


@pytest.fixture
def client(make_client: Any) -> DifyClient:
    return make_client()  # type: ignore[no-any-return]
