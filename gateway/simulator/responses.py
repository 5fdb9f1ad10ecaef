"""Response helpers of the simulator: Dify's error envelope and a disconnect-aware SSE response."""

from __future__ import annotations

from typing import Any

import anyio
from starlette.responses import JSONResponse, StreamingResponse
from starlette.types import Receive, Scope, Send

__all__ = ["EventStreamResponse", "dify_error"]


def dify_error(status: int, code: str, message: str) -> JSONResponse:
    """Dify's error envelope: `{"code", "message", "status"}` with the same HTTP status."""
    return JSONResponse({"code": code, "message": message, "status": status}, status_code=status)


class EventStreamResponse(StreamingResponse):
    """`text/event-stream` that always watches for the client going away.

    Starlette skips the disconnect listener on ASGI spec >= 2.4 and only notices a gone client
    at the next send; a simulated stall sends nothing, so it would linger. Listening always
    cancels the body generator promptly, which is also what the stats' `streams_aborted` counts.
    """

    media_type = "text/event-stream"

    def __init__(self, content: Any) -> None:
        super().__init__(content, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with anyio.create_task_group() as group:

            async def stream() -> None:
                try:
                    await self.stream_response(send)
                except OSError:  # the client went away mid-send
                    pass
                group.cancel_scope.cancel()

            group.start_soon(stream)
            await self.listen_for_disconnect(receive)
            group.cancel_scope.cancel()
