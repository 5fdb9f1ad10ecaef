"""A fake Slack Web API for tests: a small Starlette app (served by a real uvicorn) that records
every call and answers like Slack.

- `POST /api/{method}` (JSON or form, `Authorization: Bearer <token>`): `auth.test`,
  `chat.postMessage`, `chat.update`, `chat.delete`, `chat.startStream` / `appendStream` /
  `stopStream`, `assistant.threads.setStatus`. Messages are kept, so tests read what a thread
  shows (`thread`, `texts`). Streams into channels require `recipient_team_id` and
  `recipient_user_id`, as Slack does.
- `POST /response/{name}`: a slash command's `response_url`; bodies are recorded in `responses`.
- Faults: `rate_limit_once` (method names answering one 429 with `Retry-After: 1`), `errors`
  (method -> Slack error code, e.g. `{"chat.startStream": "not_allowed"}`), `outages` (method ->
  the next answers, one per call: "html" a 502 HTML page, "text" a plain-text 503, "hang" no
  answer for `hang_seconds`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

__all__ = ["SlackCall", "FakeSlack", "SlackMessage"]


@dataclass
class SlackCall:
    method: str
    params: dict[str, Any]
    status: int
    at: float = field(default_factory=time.monotonic)


@dataclass
class SlackMessage:
    ts: str
    channel: str
    thread_ts: str | None
    text: str
    streamed: bool = False
    streaming: bool = False
    deleted: bool = False
    edits: list[str] = field(default_factory=list)


class FakeSlack:
    def __init__(self, *, token: str = "xoxb-test-token", bot_user_id: str = "UBOT", team: str = "T1") -> None:
        self.token = token
        self.bot_user_id = bot_user_id
        self.team = team
        self.base = ""  # set by the test once the server runs
        self.calls: list[SlackCall] = []
        self.messages: dict[str, SlackMessage] = {}
        self.responses: dict[str, list[dict[str, Any]]] = {}
        self.rate_limit_once: set[str] = set()
        self.errors: dict[str, str] = {}
        self.outages: dict[str, list[str]] = {}
        self.hang_seconds = 2.0
        self._counter = 0
        self._changed = asyncio.Event()

    # -- what tests read --------------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        return f"{self.base}/api"

    def response_url(self, name: str) -> str:
        return f"{self.base}/response/{name}"

    def calls_to(self, method: str) -> list[SlackCall]:
        return [call for call in self.calls if call.method == method]

    def thread(self, channel: str, thread_ts: str) -> list[SlackMessage]:
        """The bot's live messages in a thread, oldest first."""
        return [
            m for m in self.messages.values() if m.channel == channel and m.thread_ts == thread_ts and not m.deleted
        ]

    def texts(self, channel: str, thread_ts: str) -> list[str]:
        return [m.text for m in self.thread(channel, thread_ts)]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 15.0) -> None:
        """Wait until `predicate()` holds (checked after every call); fail after `timeout`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"fake Slack: condition not met; calls: {[c.method for c in self.calls]}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.2))
            except TimeoutError:
                pass

    # -- the app ----------------------------------------------------------------------------------

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/api/{method}", self._api, methods=["POST", "GET"]),
                Route("/response/{name}", self._response_url, methods=["POST"]),
            ]
        )

    def _next_ts(self) -> str:
        self._counter += 1
        return f"1700000000.{self._counter:06d}"

    async def _params(self, request: Request) -> dict[str, Any]:
        raw = await request.body()
        if request.headers.get("content-type", "").startswith("application/json"):
            return dict(await request.json()) if raw else {}
        return dict(parse_qsl(raw.decode(), keep_blank_values=True))

    def _record(self, method: str, params: dict[str, Any], status: int) -> None:
        self.calls.append(SlackCall(method, params, status))
        self._changed.set()

    async def _api(self, request: Request) -> Response:
        method = request.path_params["method"]
        params = await self._params(request)
        if request.headers.get("authorization") != f"Bearer {self.token}":
            self._record(method, params, 200)
            return JSONResponse({"ok": False, "error": "invalid_auth"})
        if self.outages.get(method):
            fault = self.outages[method].pop(0)
            if fault == "hang":
                self._record(method, params, 0)
                await asyncio.sleep(self.hang_seconds)
                return JSONResponse({"ok": False, "error": "too_late"})
            status = 502 if fault == "html" else 503
            self._record(method, params, status)
            if fault == "html":
                return HTMLResponse("<html><body><h1>502 Bad Gateway</h1></body></html>", status)
            return PlainTextResponse("upstream connect error or disconnect/reset before headers", status)
        if method in self.rate_limit_once:
            self.rate_limit_once.discard(method)
            self._record(method, params, 429)
            return JSONResponse({"ok": False, "error": "ratelimited"}, 429, headers={"retry-after": "1"})
        if method in self.errors:
            self._record(method, params, 200)
            return JSONResponse({"ok": False, "error": self.errors[method]})
        handler = getattr(self, "_" + method.replace(".", "_"), None)
        body = handler(params) if handler else {"ok": False, "error": "unknown_method"}
        self._record(method, params, 200)
        return JSONResponse(body)

    async def _response_url(self, request: Request) -> Response:
        body = await request.json()
        name = request.path_params["name"]
        self.responses.setdefault(name, []).append(body)
        self._record("response_url", {"name": name, **body}, 200)
        return PlainTextResponse("ok")

    # -- Web API methods --------------------------------------------------------------------------

    def _auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "user_id": self.bot_user_id, "bot_id": "BBOT", "team_id": self.team, "user": "dify"}

    def _chat_postMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        if not params.get("channel") or not (params.get("text") or params.get("blocks")):
            return {"ok": False, "error": "no_text"}
        ts = self._next_ts()
        self.messages[ts] = SlackMessage(ts, params["channel"], params.get("thread_ts"), params.get("text", ""))
        return {"ok": True, "channel": params["channel"], "ts": ts, "message": {"ts": ts, "text": params.get("text")}}

    def _chat_update(self, params: dict[str, Any]) -> dict[str, Any]:
        message = self.messages.get(params.get("ts", ""))
        if message is None or message.deleted or message.channel != params.get("channel"):
            return {"ok": False, "error": "message_not_found"}
        message.text = params.get("text", "")
        message.edits.append(message.text)
        return {"ok": True, "channel": message.channel, "ts": message.ts, "text": message.text}

    def _chat_delete(self, params: dict[str, Any]) -> dict[str, Any]:
        message = self.messages.get(params.get("ts", ""))
        if message is None or message.deleted:
            return {"ok": False, "error": "message_not_found"}
        message.deleted = True
        return {"ok": True, "channel": message.channel, "ts": message.ts}

    def _chat_startStream(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = params.get("channel", "")
        if not channel or not params.get("thread_ts"):
            return {"ok": False, "error": "invalid_arguments"}
        if not channel.startswith("D") and not (params.get("recipient_team_id") and params.get("recipient_user_id")):
            return {"ok": False, "error": "invalid_arguments"}
        ts = self._next_ts()
        text = params.get("markdown_text", "")
        self.messages[ts] = SlackMessage(ts, channel, params["thread_ts"], text, streamed=True, streaming=True)
        return {"ok": True, "channel": channel, "ts": ts}

    def _chat_appendStream(self, params: dict[str, Any]) -> dict[str, Any]:
        message = self.messages.get(params.get("ts", ""))
        if message is None or not message.streaming:
            return {"ok": False, "error": "message_not_in_streaming_state"}
        message.text += params.get("markdown_text", "")
        return {"ok": True, "channel": message.channel, "ts": message.ts}

    def _chat_stopStream(self, params: dict[str, Any]) -> dict[str, Any]:
        message = self.messages.get(params.get("ts", ""))
        if message is None or not message.streaming:
            return {"ok": False, "error": "message_not_in_streaming_state"}
        message.text += params.get("markdown_text", "")
        message.streaming = False
        return {"ok": True, "channel": message.channel, "ts": message.ts}

    def _assistant_threads_setStatus(self, params: dict[str, Any]) -> dict[str, Any]:
        if not params.get("channel_id", "").startswith("D"):
            return {"ok": False, "error": "not_allowed"}  # only assistant threads (DMs) have a status
        return {"ok": True}
