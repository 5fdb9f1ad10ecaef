"""Signing requests to a webhook endpoint, and a loopback receiver of signed callbacks."""

from __future__ import annotations

import asyncio
import datetime
import secrets
from dataclasses import dataclass, field
from typing import Any

from standardwebhooks.webhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


def signed_headers(secret: str, body: bytes, msg_id: str | None = None) -> dict[str, str]:
    """Standard Webhooks headers made by the reference library."""
    msg_id = msg_id or "msg_" + secrets.token_hex(8)
    now = datetime.datetime.now(tz=datetime.UTC)
    signature = Webhook(secret).sign(msg_id, now, body.decode())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
    }


@dataclass
class Receiver:
    """Records callbacks that verify with the reference library; `status` is what it answers."""

    secret: str
    status: int = 200
    received: list[dict[str, Any]] = field(default_factory=list)
    attempts: list[str] = field(default_factory=list)
    rejected: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def app(self) -> Starlette:
        async def hook(request: Request) -> Response:
            body = await request.body()
            self.attempts.append(request.headers.get("webhook-id", ""))
            try:
                payload = Webhook(self.secret).verify(body, dict(request.headers))
            except Exception:
                self.rejected += 1
                return Response(status_code=400)
            if self.status < 300:
                self.received.append({"id": request.headers["webhook-id"], "payload": payload})
                self.arrived.set()
            return Response(status_code=self.status)

        return Starlette(routes=[Route("/hook", hook, methods=["POST"])])

    async def wait(self, count: int = 1, timeout: float = 20.0) -> None:
        async def enough() -> None:
            while len(self.received) < count:
                self.arrived.clear()
                await self.arrived.wait()

        await asyncio.wait_for(enough(), timeout)
