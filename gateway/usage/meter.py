"""`AnswerMeter`: the usage side of every answer of one endpoint, used by the Dify bridge.

Every surface (webhook, Slack, Discord, the bot, OpenAI, any chat plugin) reads its answers
through `ctx.apps` (gateway/dify/bridge.py), so checking budgets and recording usage there
covers them all: `check` before the answer starts, `measure` around its stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from types import TracebackType

import anyio

from gateway.clock import Clock
from gateway.dify.models import Answer
from gateway.dify.stream import DifyAnswerStream
from gateway.exceptions import Overloaded
from gateway.usage.guard import BudgetGuard
from gateway.usage.recorder import UsageRecorder
from gateway.usage.records import Outcome, UsageRecord

__all__ = ["AnswerMeter", "Measured"]

logger = logging.getLogger(__name__)


class AnswerMeter:
    """Budgets and usage for the answers of one endpoint (its workspace, id and plugin)."""

    def __init__(
        self,
        *,
        recorder: UsageRecorder,
        guard: BudgetGuard | None,
        clock: Clock,
        workspace: str,
        endpoint: str,
        plugin: str,
    ) -> None:
        self._recorder = recorder
        self._guard = guard
        self._clock = clock
        self.workspace = workspace
        self.endpoint = endpoint
        self.plugin = plugin

    async def check(self, app: str) -> None:
        """Raise `BudgetExceeded` when a budget covering an answer of `app` here is spent."""
        if self._guard is not None:
            await self._guard.check(workspace=self.workspace, app=app, endpoint=self.endpoint)

    def measure(self, stream: DifyAnswerStream, *, app: str, user: str) -> Measured:
        """Open `stream`, hand it out, and record what the answer used however it ends."""
        return Measured(self, stream, app, user)

    async def _count(
        self, stream: DifyAnswerStream | None, app: str, user: str, outcome: Outcome, started: float
    ) -> None:
        """Record the answer of `stream` (None: it never opened), whatever cancels the caller meanwhile."""
        record = self._record(
            stream.answer if stream is not None else None, app, user, outcome, self._clock.monotonic() - started
        )
        with anyio.CancelScope(shield=True):
            await self._save(record)

    def _record(self, answer: Answer | None, app: str, user: str, outcome: Outcome, elapsed: float) -> UsageRecord:
        usage = answer.usage if answer is not None else None
        key = (answer.message_id or answer.workflow_run_id or answer.task_id) if answer is not None else None
        if outcome == "ok" and answer is not None and not answer.complete:
            outcome = "cancelled"
        return UsageRecord(
            # An answer that never got an id from Dify can't be recorded twice: any unique key does.
            key=key or f"local-{uuid.uuid4().hex}",
            workspace=self.workspace,
            endpoint=self.endpoint,
            app=answer.app if answer is not None else app,
            plugin=self.plugin,
            user=user,
            outcome=outcome,
            time=self._clock.time(),
            prompt_tokens=(usage.prompt_tokens or 0) if usage else 0,
            completion_tokens=(usage.completion_tokens or 0) if usage else 0,
            total_tokens=(usage.total_tokens or 0) if usage else 0,
            total_price=(usage.total_price or "0") if usage else "0",
            currency=(usage.currency or "") if usage else "",
            latency=usage.latency if usage and usage.latency is not None else elapsed,
        )

    async def _save(self, record: UsageRecord) -> None:
        try:
            await self._recorder.record(record)
        except Exception as exc:  # the answer is given already: a store failure must not take it back
            logger.warning("usage of answer %s was not recorded: %s", record.key, exc)


class Measured(contextlib.AbstractAsyncContextManager[DifyAnswerStream]):
    """`AnswerMeter.measure`: an answer stream opened, its usage recorded when it ends.

    A plain object rather than an `asynccontextmanager` (a suspended generator and its wrapper for
    each of thousands of open answers). Outcomes: `ok` (complete), `cancelled` (cut short,
    cancelled, or the answer did not complete), `error` (anything else raised); an `Overloaded`
    while opening is not counted at all (nothing reached Dify, and the work runs again later).
    """

    __slots__ = ("_app", "_meter", "_opened", "_started", "_stream", "_user")

    def __init__(self, meter: AnswerMeter, stream: DifyAnswerStream, app: str, user: str) -> None:
        self._meter = meter
        self._stream = stream
        self._app = app
        self._user = user
        self._started = 0.0
        self._opened = False

    async def __aenter__(self) -> DifyAnswerStream:
        self._started = self._meter._clock.monotonic()
        try:
            await self._stream.__aenter__()
        except Overloaded:
            raise  # no room in this process: nothing reached Dify
        except BaseException as raised:
            await self._count(_ended_by(raised))
            raise
        self._opened = True
        return self._stream

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        try:
            await self._stream.__aexit__(exc_type, exc, tb)
        except BaseException as raised:
            await self._count(_ended_by(raised))
            raise
        if exc is not None:  # the block's own exception goes on
            await self._count(_ended_by(exc))
        else:
            await self._count("ok" if self._stream.answer.complete else "cancelled")
        return None

    async def _count(self, outcome: Outcome) -> None:
        await self._meter._count(self._stream if self._opened else None, self._app, self._user, outcome, self._started)


def _ended_by(exc: BaseException) -> Outcome:
    """The outcome of an answer that `exc` ended: cancelled (its reader left), else an error."""
    return "cancelled" if isinstance(exc, asyncio.CancelledError | GeneratorExit) else "error"
