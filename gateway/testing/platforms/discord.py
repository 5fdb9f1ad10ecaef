"""A fake Discord (REST API v10 and a gateway websocket) that records every call, for tests.

Serve `FakeDiscord().app()` with `live_server`; point the endpoint's `api_base_url` at
`{base}/api/v10`. It keeps the messages it was asked to create, so tests can read what a person
would see (`visible(token)`, `channel(channel_id)`), and it can answer 429s on demand, and
outages (`outages`: the next REST answers, one per call: "html" a 502 HTML page, "html200" an
HTML page with 200, "hang" no answer for `hang_seconds`).

For discord.py itself (login and the gateway), `patched_discord(base)` points the library's REST
base and default gateway URL here: `GET /users/@me` accepts only `bot_token`, and the websocket
says HELLO, then closes with `gateway_close_code` (4014: privileged intents not enabled).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from gateway.testing.platforms.waiting import wait_until

__all__ = ["DiscordCall", "FakeDiscord", "patched_discord"]

PREFIX = "/api/v10"
UNAUTHORIZED = {"message": "401: Unauthorized", "code": 0}


@dataclass
class DiscordCall:
    method: str
    path: str
    json: Any
    status: int
    at: float
    authorization: str | None = None


@dataclass
class DiscordMessage:
    id: str
    content: str
    where: str  # "webhook:{token}" or "channel:{channel_id}"


@dataclass
class FakeDiscord:
    bot_token: str = "bot-token-" + "x" * 20
    retry_after: float = 0.05
    #: The next N edits of an @original answer 429.
    limit_original: int = 0
    gateway_close_code: int = 4014
    #: Interaction tokens Discord no longer accepts (older than 15 minutes).
    expired_tokens: set[str] = field(default_factory=set)
    outages: list[str] = field(default_factory=list)
    hang_seconds: float = 2.0
    calls: list[DiscordCall] = field(default_factory=list)
    messages: dict[str, DiscordMessage] = field(default_factory=dict)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1000))

    # -- what a person would see -------------------------------------------------------------

    def visible(self, token: str) -> list[str]:
        """The interaction's messages in order: the original response, then follow-ups."""
        where = f"webhook:{token}"
        original = self.messages.get(f"original:{token}")
        rest = [m.content for key, m in self.messages.items() if m.where == where and not key.startswith("original:")]
        return ([original.content] if original else []) + rest

    def channel(self, channel_id: str) -> list[str]:
        return [m.content for m in self.messages.values() if m.where == f"channel:{channel_id}"]

    def matching(self, method: str, fragment: str) -> list[DiscordCall]:
        return [c for c in self.calls if c.method == method and fragment in c.path]

    async def wait_for(self, condition: Callable[[], bool], timeout: float = 15.0) -> None:
        """Wait until `condition()` holds; fail after `timeout` seconds, naming the calls seen."""
        await wait_until(
            condition, lambda: f"calls: {[(c.method, c.path, c.status) for c in self.calls]}", timeout=timeout
        )

    # -- the app -------------------------------------------------------------------------------

    def app(self) -> ASGIApp:
        return self._with_outages(self._api())

    def _with_outages(self, api: ASGIApp) -> ASGIApp:
        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http" or not self.outages:
                return await api(scope, receive, send)
            fault = self.outages.pop(0)
            request = Request(scope, receive)
            await self._record(request, 0 if fault == "hang" else 502 if fault == "html" else 200)
            if fault == "hang":
                await asyncio.sleep(self.hang_seconds)
                response: Response = JSONResponse({"message": "too late"})
            else:
                page = "<html><body><h1>502 Bad Gateway</h1></body></html>"
                response = HTMLResponse(page, 502 if fault == "html" else 200)
            await response(scope, receive, send)

        return app

    def _api(self) -> Starlette:
        return Starlette(
            routes=[
                Route(PREFIX + "/webhooks/{app_id}/{token}", self._followup, methods=["POST"]),
                Route(
                    PREFIX + "/webhooks/{app_id}/{token}/messages/{mid}",
                    self._webhook_message,
                    methods=["PATCH", "DELETE"],
                ),
                Route(PREFIX + "/channels/{cid}/messages", self._channel_post, methods=["POST"]),
                Route(PREFIX + "/channels/{cid}/messages/{mid}", self._channel_message, methods=["PATCH", "DELETE"]),
                Route(PREFIX + "/applications/{app_id}/commands", self._commands, methods=["PUT"]),
                Route(PREFIX + "/applications/{app_id}/guilds/{guild}/commands", self._commands, methods=["PUT"]),
                Route(PREFIX + "/users/@me", self._me, methods=["GET"]),
                Route(PREFIX + "/oauth2/applications/@me", self._application, methods=["GET"]),
                WebSocketRoute("/gateway", self._gateway),
            ]
        )

    async def _record(self, request: Request, status: int) -> Any:
        body = await request.body()
        data = json.loads(body) if body else None
        self.calls.append(
            DiscordCall(
                request.method, request.url.path, data, status, time.monotonic(), request.headers.get("authorization")
            )
        )
        return data

    def _bot_ok(self, request: Request) -> bool:
        return request.headers.get("authorization") == f"Bot {self.bot_token}"

    def _message(self, data: Any, where: str, key: str | None = None) -> dict[str, Any]:
        assert data["allowed_mentions"] == {"parse": []}, "answers must not ping anyone"
        assert 0 < len(data["content"]) <= 2000, len(data["content"])
        mid = key or str(next(self._ids))
        self.messages[mid] = DiscordMessage(mid, data["content"], where)
        return {"id": "1" if mid.startswith("original:") else mid, "content": data["content"]}

    async def _expired(self, request: Request) -> Response | None:
        if request.path_params["token"] not in self.expired_tokens:
            return None
        await self._record(request, 401)
        return JSONResponse({"message": "Invalid Webhook Token", "code": 50027}, 401)

    async def _followup(self, request: Request) -> Response:
        if (refused := await self._expired(request)) is not None:
            return refused
        data = await self._record(request, 200)
        token = request.path_params["token"]
        return JSONResponse(self._message(data, f"webhook:{token}"))

    async def _webhook_message(self, request: Request) -> Response:
        if (refused := await self._expired(request)) is not None:
            return refused
        token, mid = request.path_params["token"], request.path_params["mid"]
        if request.method == "PATCH" and mid == "@original" and self.limit_original > 0:
            self.limit_original -= 1
            await self._record(request, 429)
            body = {"message": "You are being rate limited.", "retry_after": self.retry_after, "global": False}
            return JSONResponse(body, 429, headers={"retry-after": str(max(1, round(self.retry_after)))})
        data = await self._record(request, 200 if request.method == "PATCH" else 204)
        key = f"original:{token}" if mid == "@original" else mid
        if request.method == "DELETE":
            self.messages.pop(key, None)
            return Response(status_code=204)
        if key not in self.messages and mid != "@original":
            return JSONResponse({"message": "Unknown DiscordMessage", "code": 10008}, 404)
        return JSONResponse(self._message(data, f"webhook:{token}", key))

    async def _channel_post(self, request: Request) -> Response:
        if not self._bot_ok(request):
            await self._record(request, 401)
            return JSONResponse(UNAUTHORIZED, 401)
        data = await self._record(request, 200)
        return JSONResponse(self._message(data, f"channel:{request.path_params['cid']}"))

    async def _channel_message(self, request: Request) -> Response:
        if not self._bot_ok(request):
            await self._record(request, 401)
            return JSONResponse(UNAUTHORIZED, 401)
        data = await self._record(request, 200)
        mid = request.path_params["mid"]
        if request.method == "DELETE":
            self.messages.pop(mid, None)
            return Response(status_code=204)
        return JSONResponse(self._message(data, f"channel:{request.path_params['cid']}", mid))

    async def _commands(self, request: Request) -> Response:
        if not self._bot_ok(request):
            await self._record(request, 401)
            return JSONResponse(UNAUTHORIZED, 401)
        data = await self._record(request, 200)
        return JSONResponse(
            [{**c, "id": str(next(self._ids)), "application_id": request.path_params["app_id"]} for c in data]
        )

    async def _me(self, request: Request) -> Response:
        if not self._bot_ok(request):
            await self._record(request, 401)
            return JSONResponse(UNAUTHORIZED, 401)
        await self._record(request, 200)
        return JSONResponse(_user("4242", "gatewaybot", bot=True))

    async def _application(self, request: Request) -> Response:
        await self._record(request, 200)
        return JSONResponse(
            {
                "id": "4242",
                "name": "gateway",
                "description": "",
                "icon": None,
                "bot_public": True,
                "bot_require_code_grant": False,
                "owner": _user("1", "owner"),
                "verify_key": "0" * 64,
                "flags": 0,
            }
        )

    async def _gateway(self, websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_json({"op": 10, "d": {"heartbeat_interval": 45000}, "s": None, "t": None})
        with contextlib.suppress(Exception):
            await asyncio.wait_for(websocket.receive_text(), 5)  # IDENTIFY
        await websocket.close(code=self.gateway_close_code)


def _user(uid: str, name: str, *, bot: bool = False) -> dict[str, Any]:
    return {"id": uid, "username": name, "discriminator": "0", "avatar": None, "global_name": None, "bot": bot}


@contextlib.contextmanager
def patched_discord(base: str) -> Iterator[None]:
    """Point discord.py's REST base and default gateway at the fake (restored afterwards)."""
    import discord.gateway
    import discord.http
    import yarl

    route_base, gateway = discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    discord.http.Route.BASE = base + PREFIX
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(base.replace("http://", "ws://") + "/gateway")
    try:
        yield
    finally:
        discord.http.Route.BASE = route_base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = gateway
