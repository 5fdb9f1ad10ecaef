"""The `webhook` plugin: any system asks a Dify app through signed HTTP calls.

Requests are signed per Standard Webhooks with the endpoint's `whsec_` secret (generated and shown
once at creation): `webhook-id`, `webhook-timestamp`, `webhook-signature` (or the `svix-*` names).

`POST {url}` with `{query, inputs?, user, conversation_key?, app?, stream?, callback_url?}`:

- `stream: true`: Server-Sent Events: `task` (the task id), `delta` / `replace` (text as it is
  generated), `done` (answer, conversation id, usage) or `error`; `ping` at most 15 s apart.
- `stream: false` without `callback_url`: JSON with the whole answer (202 with the task id if
  it is not ready within the wait limit).
- with `callback_url`: the outcome is also delivered as a signed callback (`answer.completed`
  or `answer.failed`, with the `partial_answer` streamed before the failure), even when a
  streaming caller disconnected; `stream: false` answers 202 `{task_id}` at once. The URL is
  stored encrypted with the task.

`GET {url}/tasks/{task_id}` returns a task's state and result. A replayed `webhook-id` returns
the same task, never a second answer.

When the gateway is at its answer limit and the task waited its turn too long, `stream: false`
answers 503 with `Retry-After` and `{task_id, state: "queued", error: {code: "overloaded",
message, retry_after}}` (SSE: an `error` event with the same fields). The task stays queued and
runs again later: a retry with the same `webhook-id` gets its answer.

A spent usage budget (gateway/usage) fails the task with `error.code` `budget_exceeded`: 429 for
`stream: false`, an `error` event on SSE, an `answer.failed` callback.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator, Mapping
from typing import Any

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator

from gateway.plugin import (
    NO_FALLBACK,
    ActionResult,
    BadRequest,
    BudgetExceeded,
    Context,
    GatewayError,
    JobInfo,
    JobStatus,
    NotFound,
    Overloaded,
    Permission,
    Plugin,
    Request,
    Response,
    UpstreamError,
    Verdict,
    enforce,
    new_webhook_secret,
    parse_webhook_secret,
    query_input_setting,
    retry_after_header,
    schema_error,
    standard_webhook_headers,
    verify_standard_webhook,
)

__all__ = ["AnswerRequest", "WebhookSettings", "plugin"]

HEARTBEAT_SECONDS = 15.0
OVERLOADED = "overloaded"  # the progress event of a run refused for lack of room
ID_HEADERS = (("webhook-id", "webhook-timestamp", "webhook-signature"), ("svix-id", "svix-timestamp", "svix-signature"))


class WebhookSettings(BaseModel):
    secret: SecretStr = Field(description="whsec_ secret: verifies requests and signs callbacks")
    wait_seconds: float = Field(default=120.0, gt=0, le=900, description="How long stream:false waits for the answer")
    response_schema: dict[str, Any] | None = Field(
        default=None,
        description="JSON Schema the answer's JSON must satisfy (extracted from the answer; "
        "an invalid answer is re-asked once with the errors)",
    )
    schema_fallback: Any = Field(
        default=None,
        description="Sent as `data` (with structured_fallback: true) when the answer stays invalid; "
        "unset (null): `data` is the invalid JSON and `schema_error` says why",
    )
    query_input: str | None = query_input_setting()

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: SecretStr) -> SecretStr:
        try:
            parse_webhook_secret(value.get_secret_value())
        except ValueError:
            raise ValueError("must be a whsec_ secret (whsec_ + base64 of 24-64 random bytes)") from None
        return value

    @field_validator("response_schema")
    @classmethod
    def _schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        error = schema_error(value) if value is not None else None
        if error is not None:
            raise ValueError(f"not a valid JSON Schema: {error}")
        return value


class AnswerRequest(BaseModel):
    query: str = Field(max_length=100_000)
    inputs: dict[str, Any] = Field(default_factory=dict)
    user: str = Field(min_length=1, max_length=256)
    conversation_key: str | None = Field(default=None, min_length=1, max_length=512)
    app: str | None = None
    stream: bool = False
    callback_url: str | None = Field(default=None, max_length=2048)


def _generate_secret() -> tuple[str, str]:
    secret = new_webhook_secret()
    return secret, secret


async def verify(request: Request, ctx: Context[WebhookSettings]) -> Verdict:
    # Every secret of a rotation (`endpoints rotate-secret`) until its grace ends.
    keys = [parse_webhook_secret(secret) for secret in ctx.secrets("secret")]
    for id_name, ts_name, sig_name in ID_HEADERS:
        if id_name in request.headers:
            ok = verify_standard_webhook(
                keys,
                request.headers.get(id_name),
                request.headers.get(ts_name),
                request.headers.get(sig_name),
                request.body,
                ctx.clock.time(),
            )
            return Verdict.ok() if ok else Verdict.failed("bad Standard Webhooks signature")
    return Verdict.failed("missing webhook-id / webhook-signature headers")


plugin = Plugin(
    "webhook",
    settings=WebhookSettings,
    verifier=verify,
    permissions={Permission.APPS, Permission.JOBS, Permission.HTTP},
    description="Signed HTTP calls (Standard Webhooks) to a Dify app: JSON, SSE streaming and signed callbacks.",
    min_apps=1,
    generated={"secret": _generate_secret},
)


def _delivery_id(request: Request) -> str:
    for id_name, _, _ in ID_HEADERS:
        value = request.headers.get(id_name)
        if value:
            return value
    raise BadRequest("missing webhook-id")  # pragma: no cover - the verifier already required it


@plugin.route("/", methods=["POST"])
async def answer(request: Request, ctx: Context[WebhookSettings]) -> Response:
    try:
        ask = AnswerRequest.model_validate(request.json())  # request.json() bounds the depth
    except ValidationError as exc:
        detail = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors())
        raise BadRequest(f"invalid request: {detail}") from None
    if ask.app is not None:
        ctx.apps.get(ask.app)  # NotFound for an app not bound here
    if ask.callback_url is not None:
        await ctx.callbacks.check(ask.callback_url)
    payload = ask.model_dump()
    key = _delivery_id(request)
    if ask.stream:
        run, _ = await ctx.jobs.start("answer", payload, key=key)
        return Response.stream(_sse(run, ctx))
    if ask.callback_url is not None:
        task_id = await ctx.jobs.enqueue("answer", payload, key=key)
        return Response.json({"task_id": task_id, "state": "queued"}, status=202)
    run, _ = await ctx.jobs.start("answer", payload, key=key)
    settings = ctx.settings
    # A refusal comes before any text: wait for the run's first sign, then for its outcome.
    started = ctx.clock.monotonic()
    try:
        first = await asyncio.wait_for(anext(run.events().__aiter__(), None), settings.wait_seconds)
    except TimeoutError:
        first = None
    if first is not None and first.get("type") == OVERLOADED:
        return _overloaded(run.id, first)
    left = max(0.0, settings.wait_seconds - (ctx.clock.monotonic() - started))
    if await run.wait(timeout=left) is None:
        return Response.json({"task_id": run.id, "state": "running"}, status=202)
    outcome = _outcome(await ctx.jobs.get(run.id))
    return Response.json({"task_id": run.id, **outcome}, status=_status(outcome))


def _status(outcome: dict[str, Any]) -> int:
    """200 for an answer; 429 when a usage budget stopped it (asking again won't help this month); else 502."""
    if outcome["status"] == "succeeded":
        return 200
    return 429 if outcome["error"].get("code") == BudgetExceeded.code else 502


def _overloaded(task_id: str, event: dict[str, Any]) -> Response:
    """503 for a task refused for lack of room; it stays queued and runs again later."""
    error = {"code": "overloaded", "message": event["message"], "retry_after": event["retry_after"]}
    headers = [("retry-after", retry_after_header(event["retry_after"]))]
    return Response.json({"task_id": task_id, "state": "queued", "error": error}, status=503, headers=headers)


def _outcome(status: JobStatus | None) -> dict[str, Any]:
    """A finished task's result; one that died without a result (it crashed every time) as a failure."""
    result = (status.result if status else None) or {}
    if result.get("status") == "succeeded":
        return result
    error = result.get("error") or {"code": "failed", "message": (status.error if status else None) or "failed"}
    return {"status": "failed", "error": error}


@plugin.route("/tasks/{task_id}", methods=["GET"])
async def task(request: Request, ctx: Context[WebhookSettings]) -> Response:
    status = await ctx.jobs.get(request.path_params["task_id"])
    if status is None or status.name != "answer":
        raise NotFound("no such task")
    body: dict[str, Any] = {"task_id": status.id, "state": status.state, "created_at": status.created_at}
    if status.result is not None:
        body["result"] = status.result
    elif status.state == "dead":
        body["result"] = {"status": "failed", "error": {"code": "failed", "message": status.error or "failed"}}
    return Response.json(body)


def _event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


async def _sse(run: Any, ctx: Context[WebhookSettings]) -> AsyncIterator[bytes]:
    """Relay the job's progress; the job goes on (and calls back) if the caller leaves."""
    yield _event("task", {"task_id": run.id})
    # No task per stream for the heartbeat: a read the timeout cancels ends that events iterator
    # but loses nothing (an event not yet read stays with the run), and the next read starts anew.
    events = run.events().__aiter__()
    while True:
        try:
            async with asyncio.timeout(HEARTBEAT_SECONDS):
                item = await anext(events, None)
        except TimeoutError:
            yield _event("ping", {})
            events = run.events().__aiter__()
            continue
        if item is None:
            break
        if item.get("type") in ("delta", "replace"):
            yield _event(item["type"], {"text": item["text"]})
        elif item.get("type") == OVERLOADED:
            error = {"code": "overloaded", "message": item["message"], "retry_after": item["retry_after"]}
            yield _event("error", {"task_id": run.id, "state": "queued", **error})
            return
    # The run ended here, or runs elsewhere: wait for its outcome with heartbeats.
    while await run.wait(timeout=HEARTBEAT_SECONDS) is None:
        yield _event("ping", {})
    outcome = _outcome(await ctx.jobs.get(run.id))
    if outcome["status"] == "succeeded":
        yield _event("done", {"task_id": run.id, **outcome})
    else:
        yield _event("error", {"task_id": run.id, **outcome["error"]})


@plugin.job("answer", secrets=("callback_url",))
async def answer_job(job: JobInfo, ctx: Context[WebhookSettings]) -> dict[str, Any]:
    ask = AnswerRequest.model_validate(job.payload)
    settings = ctx.settings
    result: dict[str, Any]
    shown = ""  # the text streamed to the caller so far
    try:
        async with ctx.apps.stream(
            ask.query, user=ask.user, conversation_key=ask.conversation_key, inputs=ask.inputs, app=ask.app
        ) as stream:
            async for delta in stream:
                if delta.kind == "text":
                    shown += delta.text
                    job.emit({"type": "delta", "text": delta.text})
                elif delta.kind == "replace":
                    shown = delta.text
                    job.emit({"type": "replace", "text": delta.text})
            final = stream.answer
        result = {
            "status": "succeeded",
            "answer": final.text,
            "app": final.app,
            "conversation_id": final.conversation_id,
            "message_id": final.message_id,
            "usage": final.usage.model_dump(mode="json") if final.usage else None,
            "outputs": dict(final.outputs) if final.outputs else None,
        }
        if settings.response_schema is not None:
            result.update(await _structured(ctx, ask, final.text))
    except Overloaded as exc:
        # No room in this process: tell a waiting caller, and run the job again later.
        job.emit({"type": OVERLOADED, "message": exc.message, "retry_after": exc.retry_after})
        raise
    except GatewayError as exc:
        # Dify's failures, and the endpoint's own (the app was unbound after the task was queued):
        # a failed result the caller hears about, never a job retried against the same failure.
        code = (exc.upstream_code if isinstance(exc, UpstreamError) else None) or exc.code
        result = {"status": "failed", "error": {"code": code, "message": exc.message}, "partial_answer": shown}
    if ask.callback_url is not None:
        kind = "answer.completed" if result["status"] == "succeeded" else "answer.failed"
        await ctx.callbacks.send(ask.callback_url, kind, {"task_id": job.id, **result}, msg_id=f"msg_{job.id}")
    return result


@plugin.action(
    "call",
    help="Send a signed request to this endpoint and print the answer (a way to try it out). "
    "Exits 1 when the answer failed; --json prints the answer object, or with --stream one event per line.",
    options={
        "query": "The question",
        "user": "The Dify user (default: cli)",
        "conversation-key": "Continue the conversation of this key",
    },
    flags={"stream": "Ask for Server-Sent Events and show how many pieces arrived"},
)
async def call(ctx: Context[WebhookSettings], args: Mapping[str, str]) -> ActionResult:
    if not args.get("query"):
        raise BadRequest("--query is required")
    settings = ctx.settings
    stream = args.get("stream") == "true"
    body = json.dumps(
        {
            "query": args["query"],
            "user": args.get("user") or "cli",
            "conversation_key": args.get("conversation-key"),
            "stream": stream,
        }
    ).encode()
    msg_id = "msg_" + secrets.token_hex(12)
    headers = standard_webhook_headers(
        [parse_webhook_secret(settings.secret.get_secret_value())], msg_id, int(ctx.clock.time()), body
    )
    response = await ctx.http.post(
        ctx.endpoint.url, content=body, headers={**headers, "content-type": "application/json"}, timeout=300
    )
    if stream and response.status_code == 200:
        return _streamed(response.text)
    return _answered(response.status_code, response.text)


def _answered(status: int, text: str) -> ActionResult:
    """The outcome of a `stream: false` call (or of a refused streaming one)."""
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        error: dict[str, Any] = {"code": "not_json", "message": f"the endpoint answered HTTP {status} without JSON"}
        return ActionResult(f"failed: {error['message']}", {"status": "failed", "error": error}, ok=False)
    if status == 200 and data.get("status") == "succeeded":
        return ActionResult(
            f"{data.get('answer')}\n(task {data.get('task_id')}, conversation {data.get('conversation_id')})", data
        )
    if status == 202:
        task_id = data.get("task_id")
        return ActionResult(f"still running: task {task_id} (GET the endpoint URL + /tasks/{task_id} later)", data)
    reported = data.get("error")
    error = reported if isinstance(reported, dict) else {}
    task = f" (task {data['task_id']})" if data.get("task_id") else ""
    text = f"failed: HTTP {status}, {error.get('code', 'error')}: {error.get('message', '')}{task}"
    return ActionResult(text, data, ok=False)


def _streamed(text: str) -> ActionResult:
    """The outcome of a `stream: true` call from its Server-Sent Events (our own `_event` format)."""
    events: list[dict[str, Any]] = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.split("\n") if ": " in line)
        if "event" in fields:
            try:
                data = json.loads(fields.get("data") or "{}")
            except (ValueError, RecursionError):
                continue  # a line mangled on the way (our events are JSON objects): not an outcome
            if isinstance(data, dict):
                events.append({"event": fields["event"], "data": data})
    final: dict[str, Any] = (
        events[-1] if events else {"event": "error", "data": {"message": "the stream ended without an outcome"}}
    )
    pieces = sum(1 for e in events if e["event"] == "delta")
    data = final["data"]
    if final["event"] == "done":
        return ActionResult(
            f"{data.get('answer')}\n({pieces} text pieces streamed, task {data.get('task_id')})", data, events=events
        )
    message = f"failed: {data.get('code', 'error')}: {data.get('message', '')} (task {data.get('task_id')})"
    return ActionResult(message, {"status": "failed", "error": data}, ok=False, events=events)


async def _structured(ctx: Context[WebhookSettings], ask: AnswerRequest, text: str) -> dict[str, Any]:
    """The answer's JSON checked against the schema, re-asked once when invalid (gateway.plugin.enforce):
    `{"data", "schema_error", "structured_fallback"}`."""
    settings = ctx.settings
    schema = settings.response_schema

    async def reask(prompt: str) -> str:
        query = prompt if ask.conversation_key else f"{ask.query}\n\nYour previous answer:\n{text}\n\n{prompt}"
        again = await ctx.apps.ask(
            query, user=ask.user, conversation_key=ask.conversation_key, inputs=ask.inputs, app=ask.app
        )
        return again.text

    fallback = NO_FALLBACK if settings.schema_fallback is None else settings.schema_fallback
    outcome = await enforce(text, schema, reask, fallback=fallback)
    return {
        "data": outcome.data,
        "schema_error": "; ".join(outcome.errors) if outcome.errors else None,
        "structured_fallback": outcome.fallback,
    }
