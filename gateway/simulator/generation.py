"""The simulator's generation endpoints: chat-messages, completion-messages, workflows/run, stops."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, Literal

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from gateway.clock import Clock
from gateway.dify.models import CHAT_MODES
from gateway.simulator.config import find_fault, find_says, strip_faults
from gateway.simulator.responses import EventStreamResponse, dify_error
from gateway.simulator.script import PING, Ids, Step, encode, plan, stopped_tail, tokenize, usage
from gateway.simulator.state import SimulatorState, Task

__all__ = ["Generator"]

Route = Literal["chat", "completion", "workflow"]
_WRONG_ROUTE = "Please check if your app mode matches the right API route."
_HTTP_FAULTS: dict[str, tuple[int, str, str]] = {
    "500": (500, "internal_server_error", "The server encountered an internal error."),
    "429": (429, "too_many_requests", "Too many requests. Please try again later."),
    "429-quota": (429, "rate_limit_error", "Rate Limit Error: your plan's quota is used up."),
    "400": (400, "app_unavailable", "App unavailable, please check your app configurations."),
}


class Generator:
    """Serves generation requests against one `SimulatorState`, sleeping on `clock`."""

    def __init__(self, state: SimulatorState, clock: Clock) -> None:
        self.state = state
        self.clock = clock

    async def handle(self, request: Request, body: dict[str, Any], route: Route) -> Response:
        config, state = self.state.config, self.state
        mode = config.mode
        if route == "chat" and mode not in CHAT_MODES:
            return dify_error(400, "not_chat_app", _WRONG_ROUTE)
        if route == "completion" and mode != "completion":
            return dify_error(400, "app_unavailable", "App unavailable, please check your app configurations.")
        if route == "workflow" and mode != "workflow":
            return dify_error(400, "not_workflow_app", _WRONG_ROUTE)
        user, inputs, query = body.get("user"), body.get("inputs"), body.get("query")
        if not isinstance(user, str) or not user:
            return dify_error(400, "invalid_param", "Arg user must be provided.")
        if not isinstance(inputs, dict):
            return dify_error(400, "invalid_param", "inputs is required and must be an object")
        if route == "chat" and not isinstance(query, str):
            return dify_error(400, "invalid_param", "query is required")
        response_mode = body.get("response_mode") or "blocking"  # Dify's default
        if response_mode not in ("blocking", "streaming"):
            return dify_error(400, "invalid_param", "response_mode must be blocking or streaming")
        if response_mode == "blocking" and mode in ("agent-chat", "agent"):
            return dify_error(400, "invalid_param", "Agent Chat App does not support blocking mode")
        form = config.input_form
        for name, _, required in form:
            if required and inputs.get(name) in (None, ""):
                return dify_error(400, "invalid_param", f"{name} is required in input form")
        text = query if isinstance(query, str) and (route == "chat" or query) else _form_text(inputs, form)
        now = int(self.clock.time())
        conversation = None
        if route != "workflow":
            conversation_id = body.get("conversation_id")
            if conversation_id == "":
                return dify_error(400, "invalid_param", "conversation_id must be a 32-character UUID or omitted")
            try:
                conversation = state.conversation(conversation_id, user, inputs, now)
            except KeyError:
                return dify_error(404, "not_found", "Conversation Not Exists.")
        for item in body.get("files") or []:
            upload = state.uploads.get(item.get("upload_file_id", "")) if isinstance(item, dict) else None
            if isinstance(item, dict) and item.get("transfer_method") == "local_file":
                if not config.file_upload:
                    return dify_error(400, "invalid_param", "file upload is not enabled for this app")
                if upload is None or upload["created_by"] != user:
                    return dify_error(400, "invalid_param", "Invalid upload file id.")
        state.generation_requests += 1
        fault = state.pick_fault(find_fault(text) or find_fault(json.dumps(inputs, ensure_ascii=False)))
        if fault is None and any(word in text for word in config.moderated_words):
            fault = "replace"  # the answer echoes the word: output moderation replaces it at the end
        if fault == "503":
            return PlainTextResponse("Service Temporarily Unavailable", status_code=503)
        if fault in _HTTP_FAULTS:
            return dify_error(*_HTTP_FAULTS[fault])
        answer = f"You said: {strip_faults(text)}" if config.answer == "echo" else config.answer
        says = find_says(text)
        # A script is known by its user and texts (a repeated request continues it) and by the
        # conversation it started in (the next turns continue it).
        script_key = user + "\x00" + "\x00".join(says) if says else None
        if conversation is not None:
            if script_key is not None:
                state.conversation_scripts[conversation.id] = script_key
            script_key = state.conversation_scripts.get(conversation.id)
        scripted = state.scripted(script_key, says)
        if scripted is not None:
            answer = scripted
        ids = Ids.new(conversation.id if conversation else None, now)
        used = usage(17 + len(tokenize(text)), len(tokenize(answer)), config.first_token_latency)
        if conversation is not None:
            conversation.messages.append(
                {
                    "id": ids.message_id,
                    "conversation_id": conversation.id,
                    "inputs": inputs,
                    "query": text,
                    "answer": answer,
                    "message_files": [],
                    "feedback": None,
                    "retriever_resources": [],
                    "agent_thoughts": [],
                    "created_at": now,
                    "status": "normal",
                    "error": None,
                }
            )
        if response_mode == "blocking":
            return await self._blocking(mode, ids, answer, used, fault)
        steps = plan(
            mode,
            ids,
            answer,
            used,
            fault=fault,
            first_token_latency=config.first_token_latency,
            tokens_per_second=config.tokens_per_second,
            stall_seconds=config.stall_seconds,
            slow_first_token_latency=config.slow_first_token_latency,
        )
        task = Task(ids.task_id, user, mode)
        return EventStreamResponse(self._play(task, ids, used, steps))

    async def stop(self, request: Request, body: dict[str, Any], route: Route, task_id: str) -> Response:
        """Record the stop; stop the task when the user matches (workflow stops don't check).

        `matched`: the task is known and the user fits; `running`: our stream was still open."""
        user = body.get("user")
        if not isinstance(user, str) or not user:
            return dify_error(400, "invalid_param", "Arg user must be provided.")
        owner = self.state.task_users.get(task_id)
        matched = owner is not None and (route == "workflow" or owner == user)
        task = self.state.tasks.get(task_id)
        self.state.stops.append(
            {"task_id": task_id, "user": user, "route": route, "matched": matched, "running": task is not None}
        )
        if task is not None and matched:
            task.stopped.set()
        return JSONResponse({"result": "success"})  # Dify answers success even on a user mismatch

    async def _blocking(self, mode: str, ids: Ids, answer: str, used: dict[str, Any], fault: str | None) -> Response:
        if fault in ("error-first", "error-midstream") or (fault == "workflow-failed" and mode != "workflow"):
            return dify_error(400, "completion_request_error", "[simulator] the model provider failed")
        await self.clock.sleep(self.state.config.first_token_latency)
        if mode == "workflow":
            failed = fault == "workflow-failed"
            return JSONResponse(
                {
                    "task_id": ids.task_id,
                    "workflow_run_id": ids.workflow_run_id,
                    "data": {
                        "id": ids.workflow_run_id,
                        "workflow_id": "wf-simulator",
                        "status": "failed" if failed else "succeeded",
                        "outputs": None if failed else {"text": answer},
                        "error": "[simulator] node failed" if failed else None,
                        "elapsed_time": 0.5,
                        "total_tokens": used["total_tokens"],
                        "total_steps": 3,
                        "created_at": ids.created_at,
                        "finished_at": ids.created_at + 1,
                    },
                }
            )
        return JSONResponse(
            {
                "event": "message",
                "task_id": ids.task_id,
                "id": ids.message_id,
                "message_id": ids.message_id,
                "conversation_id": ids.conversation_id,
                "mode": mode,
                "answer": answer,
                "metadata": {"usage": used, "retriever_resources": []},
                "created_at": ids.created_at,
            }
        )

    async def _play(self, task: Task, ids: Ids, used: dict[str, Any], steps: list[Step]) -> AsyncIterator[bytes]:
        state = self.state
        state.start_task(task)
        state.streams_started += 1
        finished = False
        started = self.clock.monotonic()
        try:
            quiet = 0.0  # seconds since the last byte sent
            for step in steps:
                if task.stopped.is_set():
                    break
                if step.kind == "event":
                    payload = _with_latency(step.payload, self.clock.monotonic() - started)
                    yield encode(payload)
                    _report(state, task, ids, payload)
                    quiet = 0.0
                elif step.kind == "raw":
                    yield step.raw
                    quiet = 0.0
                elif step.kind == "stall":
                    await self._sleep_unless_stopped(task, step.seconds)
                else:
                    remaining = step.seconds
                    while remaining > 0 and not task.stopped.is_set():
                        piece = min(remaining, state.config.ping_interval - quiet)
                        await self._sleep_unless_stopped(task, piece)
                        remaining -= piece
                        quiet += piece
                        if quiet >= state.config.ping_interval:
                            yield PING
                            state.pings_sent += 1
                            quiet = 0.0
            if task.stopped.is_set():
                for payload in stopped_tail(task.mode, ids, used):
                    yield encode(payload)
                    _report(state, task, ids, payload)
            finished = True
        finally:
            state.tasks.pop(task.task_id, None)
            if finished:
                state.streams_completed += 1
            else:
                state.streams_aborted += 1

    async def _sleep_unless_stopped(self, task: Task, seconds: float) -> None:
        if seconds <= 0:
            return
        async with anyio.create_task_group() as group:

            async def sleep() -> None:
                await self.clock.sleep(seconds)
                group.cancel_scope.cancel()

            async def watch() -> None:
                await task.stopped.wait()
                group.cancel_scope.cancel()

            group.start_soon(sleep)
            group.start_soon(watch)


def _report(state: SimulatorState, task: Task, ids: Ids, payload: dict[str, Any]) -> None:
    """Enter a sent terminator's usage in the ledger: message_end's, or a workflow's total tokens."""
    if payload.get("event") == "message_end":
        state.report_usage(ids.message_id, payload["metadata"]["usage"])
    elif payload.get("event") == "workflow_finished" and task.mode == "workflow":
        if payload["data"].get("status") == "succeeded":
            state.report_usage(ids.workflow_run_id, {"total_tokens": payload["data"]["total_tokens"]})


def _with_latency(payload: dict[str, Any], elapsed: float) -> dict[str, Any]:
    if payload.get("event") == "message_end":
        payload = {**payload, "metadata": {**payload["metadata"]}}
        payload["metadata"]["usage"] = {**payload["metadata"]["usage"], "latency": round(elapsed, 3)}
    return payload


def _form_text(inputs: dict[str, Any], form: tuple[tuple[str, str, bool], ...]) -> str:
    """Workflow/completion apps take their text from `inputs`: the form's first text variable,
    else "query", else any string."""
    names = [name for name, kind, _ in form if kind in ("text-input", "paragraph")] + ["query"]
    for name in names:
        if isinstance(inputs.get(name), str):
            return str(inputs[name])
    return next((item for item in inputs.values() if isinstance(item, str)), "")
