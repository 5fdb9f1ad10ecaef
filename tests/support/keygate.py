"""A Dify in front of simulated apps that tells them apart by key, and can refuse keys (revoked,
or not yet known to every Dify replica): the outside edge a key rotation is tested against."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["KeyGate"]


class KeyGate:
    """ASGI app: a request goes to the app its `Bearer` key opens; `refused` keys get Dify's 401,
    `flaky` keys get it on every other request. `seen` counts the requests per key."""

    def __init__(self, apps: Mapping[str, ASGIApp]) -> None:
        self.apps = dict(apps)
        self.refused: set[str] = set()
        self.flaky: set[str] = set()
        self.seen: Counter[str] = Counter()
        self.refusals: Counter[str] = Counter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await next(iter(self.apps.values()))(scope, receive, send)
            return
        headers = dict(scope["headers"])
        key = headers.get(b"authorization", b"").decode("latin-1").removeprefix("Bearer ").strip()
        self.seen[key] += 1
        app = self.apps.get(key)
        if app is None or key in self.refused or (key in self.flaky and self.seen[key] % 2 == 0):
            self.refusals[key] += 1
            body = {"code": "unauthorized", "message": "Access token is invalid", "status": 401}
            await JSONResponse(body, status_code=401)(scope, receive, send)
            return
        await app(scope, receive, send)
