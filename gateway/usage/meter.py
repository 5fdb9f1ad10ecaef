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
from collections.abc import AsyncIterator

import anyio

from gateway.clock import Clock
from gateway.dify.models import Answer
from gateway.dify.stream import DifyAnswerStream
from gateway.exceptions import Overloaded
from gateway.usage.guard import BudgetGuard
from gateway.usage.recorder import UsageRecorder
from gateway.usage.records import Outcome, UsageRecord

__all__ = ["AnswerMeter"]

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

    @contextlib.asynccontextmanager
    async def measure(self, stream: DifyAnswerStream, *, app: str, user: str) -> AsyncIterator[DifyAnswerStream]:
        """Open `stream`, hand it out, and record what the answer used however it ends."""
        started = self._clock.monotonic()
        opened = False
        counted = True
        outcome: Outcome = "error"
        try:
            async with stream:
                opened = True
                yield stream
            outcome = "ok" if stream.answer.complete else "cancelled"
        except Overloaded:
            # No room in this process: nothing reached Dify, and the work runs again later.
            counted = opened
            raise
        except (asyncio.CancelledError, GeneratorExit):
            outcome = "cancelled"
            raise
        finally:
            if counted:
                answer = stream.answer if opened else None
                record = self._record(answer, app, user, outcome, self._clock.monotonic() - started)
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
