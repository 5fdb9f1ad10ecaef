"""A whole chat plugin for the made-up TinyChat platform, written only against the plugin contract
(`gateway.plugin`), the chat-delivery engine (`gateway.delivery.chat`, with the `TinyChat` adapter
of tiny_chat.py) and tested only with the plugin test kit (`gateway.testing`): what a new
platform needs, end to end: a verified inbound event, a job, an answer streamed into messages.

TinyChat signs its events per Standard Webhooks and expects an answer within seconds, so the
plugin acknowledges at once and answers in a job (keyed by the event id: a redelivery is one job).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pydantic import BaseModel, SecretStr

from gateway.delivery.chat import StoredMessages, deliver
from gateway.plugin import (
    Context,
    JobInfo,
    Permission,
    Plugin,
    Request,
    Response,
    Verdict,
    parse_webhook_secret,
    verify_standard_webhook,
)
from gateway.testing import FakeContext, VirtualClock, webhook_request
from tests.gateway.delivery.test_tiny_chat import TinyChatAPI
from tests.gateway.delivery.tiny_chat import TinyChat

pytestmark = pytest.mark.anyio

# -- the plugin ---------------------------------------------------------------------------------------


class TinySettings(BaseModel):
    secret: SecretStr  # whsec_: TinyChat signs its events with it
    api_base_url: str = "https://tiny.example/api"


async def verify(request: Request, ctx: Context) -> Verdict:
    ok = verify_standard_webhook(
        [parse_webhook_secret(ctx.settings.secret.get_secret_value())],
        request.headers.get("webhook-id"),
        request.headers.get("webhook-timestamp"),
        request.headers.get("webhook-signature"),
        request.body,
        ctx.clock.time(),
    )
    return Verdict.ok() if ok else Verdict.failed("bad TinyChat signature")


tiny = Plugin(
    "tinychat",
    settings=TinySettings,
    verifier=verify,
    permissions={Permission.APPS, Permission.JOBS, Permission.STORAGE, Permission.HTTP},
)


@tiny.route("/events", methods=["POST"])
async def events(request: Request, ctx: Context) -> Response:
    event = request.json()
    payload = {"chat": str(event["chat"]), "user": str(event["user"]), "text": str(event["text"])}
    await ctx.jobs.enqueue("answer", payload, key=request.headers["webhook-id"])
    return Response.json({"ok": True})


@tiny.job("answer")
async def answer(job: JobInfo, ctx: Context) -> dict[str, Any]:
    chat = job.payload["chat"]
    done = await deliver(
        ctx.apps.stream(job.payload["text"], user=job.payload["user"], conversation_key=f"tiny:{chat}"),
        TinyChat(ctx.http, ctx.settings.api_base_url, chat),
        clock=ctx.clock,
        posted=StoredMessages(ctx.storage, f"posted:{job.id}"),  # a rerun edits what this run posted
        fence=job.fence,
    )
    return {"messages": done.messages}


# -- its test -----------------------------------------------------------------------------------------

SECRET = "whsec_" + "dGlueWNoYXQtdGVzdC1zZWNyZXQtMzItYnl0ZXMhISE="
ANSWER = "Ask @everyone: " + " ".join(f"word{i}" for i in range(150))


async def test_an_event_is_acknowledged_then_answered_in_pages() -> None:
    clock = VirtualClock()
    api = TinyChatAPI(clock)  # the platform: records requests, answers the first edit with a 429
    async with (
        httpx.AsyncClient(transport=httpx.MockTransport(api)) as http,
        FakeContext(tiny, {"secret": SECRET}, answer=ANSWER, http=http, clock=clock) as ctx,
    ):
        event = {"chat": "c1", "user": "u7", "text": "What should I ask?"}
        signed = webhook_request(SECRET, event, timestamp=clock.time(), msg_id="evt_1")
        assert (await ctx.dispatch(signed.request("/events"))).status == 200
        assert (await ctx.dispatch(signed.request("/events"))).status == 200  # redelivered: the same job
        forged = webhook_request(
            "whsec_" + "Zm9yZ2VkLXNlY3JldC1mb3JnZWQtc2VjcmV0LTEyMw==", event, timestamp=clock.time()
        )
        assert (await ctx.dispatch(forged.request("/events"))).status == 401
        [job] = ctx.jobs.enqueued
        assert api.messages == {}  # acknowledged; nothing answered yet

        [run] = await ctx.jobs.run_all()

    pages = list(api.messages.values())
    assert run.state == "done" and run.result == {"messages": len(pages)} and len(pages) >= 3
    assert all(len(page) <= 500 for page in pages)
    assert " ".join(pages).split() == ANSWER.replace("@", "@\u200b").split()  # nobody pinged
    assert ctx.storage.data[f"posted:{job.id}"]  # what a rerun would edit
    [call] = ctx.apps.calls
    assert (call.query, call.user, call.conversation_key) == ("What should I ask?", "u7", "tiny:c1")
