"""The webhook plugin end to end: real uvicorn servers for the gateway, the Dify simulator and a
callback receiver; requests signed and callbacks verified with the `standardwebhooks` library."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.types import ASGIApp

from gateway.http.app import create_app
from gateway.simulator.app import create_simulator_app
from gateway.simulator.config import SimulatorConfig
from tests.support.gateway import admin_headers, live_app, live_server, make_settings, refused_port
from tests.support.webhooks import Receiver, signed_headers

pytestmark = [pytest.mark.anyio, pytest.mark.live]


@dataclass
class Stack:
    client: httpx.AsyncClient
    url: str
    secret: str
    endpoint_id: str
    simulator: str
    receiver: Receiver
    receiver_url: str

    async def post(self, payload: dict[str, Any], msg_id: str | None = None, **kwargs: Any) -> httpx.Response:
        body = json.dumps(payload).encode()
        return await self.client.post(
            self.url, content=body, headers=signed_headers(self.secret, body, msg_id), **kwargs
        )

    async def sim_stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = (await self.client.get(f"{self.simulator}/_sim/stats")).json()
        return stats


def sse_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


@contextlib.asynccontextmanager
async def webhook_stack(
    tmp_path: Path, config: SimulatorConfig, endpoint_settings: dict[str, Any] | None = None
) -> AsyncIterator[Stack]:
    """The gateway, a simulator app "support" (of `config`'s mode), a callback receiver, and a
    webhook endpoint with `endpoint_settings`."""

    def gateway_app(url: str) -> ASGIApp:
        settings = make_settings(
            tmp_path, public_url=url, callback_allow_hosts=("127.0.0.1",), callback_allow_http=True
        )
        return create_app(settings)

    receiver = Receiver(secret="")
    async with (
        live_server(create_simulator_app(config)) as simulator,
        live_server(receiver.app()) as receiver_base,
        live_app(gateway_app) as gateway,
        httpx.AsyncClient(timeout=30) as client,
    ):
        admin = f"{gateway}/admin/api"
        app = {"name": "support", "base_url": f"{simulator}/v1", "api_key": "app-simulator", "mode": config.mode}
        assert (await client.post(f"{admin}/apps", json=app, headers=admin_headers())).status_code == 201
        endpoint_body = {"plugin": "webhook", "apps": ["support"], "settings": endpoint_settings or {}}
        created = await client.post(f"{admin}/endpoints", json=endpoint_body, headers=admin_headers())
        assert created.status_code == 201, created.text
        endpoint = created.json()
        secret = endpoint["secrets"]["secret"]
        assert endpoint["settings"]["secret"] == "••••••••"
        receiver.secret = secret
        yield Stack(client, endpoint["url"], secret, endpoint["id"], simulator, receiver, f"{receiver_base}/hook")


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    async with webhook_stack(tmp_path, SimulatorConfig(first_token_latency=0.05, tokens_per_second=40)) as running:
        yield running


@pytest.mark.parametrize("setting", [{}, {"query_input": "question"}], ids=["app-default", "setting"])
async def test_a_workflow_app_gets_the_query_in_its_own_input(tmp_path: Path, setting: dict[str, str]) -> None:
    form = (("question", "paragraph", True), ("notes", "paragraph", False), ("lang", "select", False))
    config = SimulatorConfig(mode="workflow", inputs=form, first_token_latency=0, tokens_per_second=0)
    async with webhook_stack(tmp_path, config, setting) as stack:
        response = await stack.post({"query": "what is up", "inputs": {"lang": "fr"}, "user": "u1"})
        assert response.status_code == 200, response.text
        assert response.json()["answer"] == "You said: what is up"
        [run] = [r["body"] for r in (await stack.sim_stats())["recent_requests"] if r["path"].endswith("/run")]
    assert run["inputs"] == {"lang": "fr", "question": "what is up"}


async def test_streams_the_answer_as_it_is_generated(stack: Stack) -> None:
    payload = {"query": "tell me a fairly long story please", "user": "u1", "stream": True}
    body = json.dumps(payload).encode()
    arrivals: list[tuple[float, str]] = []
    async with stack.client.stream("POST", stack.url, content=body, headers=signed_headers(stack.secret, body)) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        async for chunk in r.aiter_text():
            arrivals.append((time.monotonic(), chunk))
    events = sse_events("".join(chunk for _, chunk in arrivals))
    names = [name for name, _ in events]
    assert names[0] == "task" and names[-1] == "done"
    deltas = [data["text"] for name, data in events if name == "delta"]
    assert len(deltas) > 3
    done = events[-1][1]
    assert "".join(deltas) == done["answer"] == "You said: tell me a fairly long story please"
    assert done["conversation_id"] and done["usage"]["total_tokens"] > 0
    # Incremental: the chunks arrived spread over time, not in one piece at the end.
    assert arrivals[-1][0] - arrivals[0][0] > 0.1
    assert len(arrivals) > 3


async def test_blocking_answer_and_task_lookup(stack: Stack) -> None:
    response = await stack.post({"query": "hi", "user": "u1"})
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "succeeded" and body["answer"] == "You said: hi"
    task = await stack.client.get(f"{stack.url}/tasks/{body['task_id']}", headers=signed_headers(stack.secret, b""))
    assert task.json()["state"] == "done" and task.json()["result"]["answer"] == "You said: hi"
    missing = await stack.client.get(f"{stack.url}/tasks/job_nope", headers=signed_headers(stack.secret, b""))
    assert missing.status_code == 404


async def test_a_replayed_webhook_id_returns_the_same_task(stack: Stack) -> None:
    first = await stack.post({"query": "once", "user": "u1"}, msg_id="msg_replay1")
    second = await stack.post({"query": "once", "user": "u1"}, msg_id="msg_replay1")
    assert first.json()["task_id"] == second.json()["task_id"]
    assert second.json()["answer"] == "You said: once"
    stats = await stack.sim_stats()
    assert stats["generation_requests"] == 1


async def test_conversation_key_continues_one_conversation(stack: Stack) -> None:
    a = (await stack.post({"query": "one", "user": "u1", "conversation_key": "thread-1"})).json()
    b = (await stack.post({"query": "two", "user": "u1", "conversation_key": "thread-1"})).json()
    other_user = (await stack.post({"query": "three", "user": "u2", "conversation_key": "thread-1"})).json()
    fresh = (await stack.post({"query": "four", "user": "u1"})).json()
    assert a["conversation_id"] == b["conversation_id"]
    assert other_user["conversation_id"] != a["conversation_id"]
    assert fresh["conversation_id"] != a["conversation_id"]


async def test_callback_is_signed_and_delivered_once(stack: Stack) -> None:
    response = await stack.post({"query": "call me", "user": "u1", "callback_url": stack.receiver_url})
    assert response.status_code == 202
    task_id = response.json()["task_id"]
    await stack.receiver.wait(1)
    await asyncio.sleep(0.3)
    assert len(stack.receiver.received) == 1
    delivered = stack.receiver.received[0]
    assert delivered["payload"]["type"] == "answer.completed"
    assert delivered["payload"]["data"]["task_id"] == task_id
    assert delivered["payload"]["data"]["answer"] == "You said: call me"
    assert stack.receiver.rejected == 0


async def test_disconnect_midway_still_completes_and_calls_back_once(stack: Stack) -> None:
    query = " ".join(["word"] * 40)
    payload = {"query": query, "user": "u1", "stream": True, "callback_url": stack.receiver_url}
    body = json.dumps(payload).encode()
    async with stack.client.stream("POST", stack.url, content=body, headers=signed_headers(stack.secret, body)) as r:
        async for chunk in r.aiter_text():
            if "event: delta" in chunk:
                break  # hang up after the first text
    await stack.receiver.wait(1, timeout=30)
    await asyncio.sleep(0.5)
    assert len(stack.receiver.received) == 1
    data = stack.receiver.received[0]["payload"]["data"]
    assert data["status"] == "succeeded" and data["answer"] == "You said: " + query


async def test_the_callback_of_a_failed_answer_carries_the_text_already_streamed(stack: Stack) -> None:
    words = " ".join(f"word{n}" for n in range(20))
    payload = {"query": f"[[fault:error-midstream]] {words}", "user": "u1", "callback_url": stack.receiver_url}
    response = await stack.post(payload)
    assert response.status_code == 202
    await stack.receiver.wait(1)  # verified with the standardwebhooks library
    delivered = stack.receiver.received[0]["payload"]
    assert delivered["type"] == "answer.failed"
    data = delivered["data"]
    assert data["status"] == "failed" and data["error"]["code"]
    partial = data["partial_answer"]
    assert partial.startswith("You said: word0") and len(partial) < len("You said: " + words)
    assert (f"You said: {words}").startswith(partial)


async def test_receiver_down_then_up_gets_the_same_webhook_id(stack: Stack) -> None:
    stack.receiver.status = 503
    response = await stack.post({"query": "retry me", "user": "u1", "callback_url": stack.receiver_url})
    assert response.status_code == 202
    for _ in range(100):
        if stack.receiver.attempts:
            break
        await asyncio.sleep(0.05)
    stack.receiver.status = 200  # recovers before the second attempt (5 s later)
    await stack.receiver.wait(1, timeout=20)
    assert len(stack.receiver.attempts) == 2
    assert stack.receiver.attempts[0] == stack.receiver.attempts[1] == stack.receiver.received[0]["id"]


@pytest.mark.parametrize(
    "callback",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/x",
        "http://[::1]/x",
        "file:///etc/passwd",
        "http://[::ffff:0:a9fe:a9fe]/latest/meta-data/",  # IPv4-translated (RFC 6145)
        "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/",  # NAT64 (RFC 6052)
        "http://[64:ff9b:1::a00:1]/x",  # local-use NAT64 (RFC 8215)
        "http://[2002:a9fe:a9fe::1]/x",  # 6to4
    ],
)
async def test_ssrf_callback_urls_are_refused(stack: Stack, callback: str) -> None:
    response = await stack.post({"query": "x", "user": "u1", "callback_url": callback})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"


async def test_unsigned_badly_signed_and_malformed_requests(stack: Stack) -> None:
    body = b'{"query": "x", "user": "u"}'
    assert (await stack.client.post(stack.url, content=body)).status_code == 401
    headers = signed_headers(stack.secret, body)
    headers["webhook-signature"] = "v1," + "A" * 43 + "="
    assert (await stack.client.post(stack.url, content=body, headers=headers)).status_code == 401
    headers = signed_headers(stack.secret, body)
    assert (await stack.client.post(stack.url, content=body + b" ", headers=headers)).status_code == 401
    for bad in (b"{not json", b'{"user": "u"}', b'{"query": "x", "user": ""}', b"[]"):
        response = await stack.client.post(stack.url, content=bad, headers=signed_headers(stack.secret, bad))
        assert response.status_code == 400, bad
        assert response.json()["error"]["code"] == "bad_request"


async def test_dify_failures_reach_the_caller_as_errors(stack: Stack) -> None:
    blocking = await stack.post({"query": "[[fault:400]] x", "user": "u1"})
    assert blocking.status_code == 502
    assert blocking.json()["error"]["code"] == "app_unavailable"
    payload = {"query": "[[fault:error-midstream]] a b c d e f", "user": "u1", "stream": True}
    body = json.dumps(payload).encode()
    streamed = await stack.client.post(stack.url, content=body, headers=signed_headers(stack.secret, body))
    events = sse_events(streamed.text)
    assert events[-1][0] == "error"


async def test_a_failing_app_falls_back_to_its_fallback_app(stack: Stack, tmp_path: Path) -> None:
    with refused_port() as port:  # nothing listens there
        admin = stack.url.split("/e/")[0] + "/admin/api"
        broken = {
            "name": "broken",
            "base_url": f"http://127.0.0.1:{port}/v1",
            "api_key": "app-x",
            "mode": "chat",
            "fallback": "support",
        }
        assert (await stack.client.post(f"{admin}/apps", json=broken, headers=admin_headers())).status_code == 201
        created = await stack.client.post(
            f"{admin}/endpoints", json={"plugin": "webhook", "apps": ["broken"]}, headers=admin_headers()
        )
        endpoint = created.json()
        body = json.dumps({"query": "anyone there", "user": "u1"}).encode()
        response = await stack.client.post(
            endpoint["url"], content=body, headers=signed_headers(endpoint["secrets"]["secret"], body)
        )
        assert response.status_code == 200, response.text
        assert response.json()["app"] == "support"
        assert response.json()["answer"] == "You said: anyone there"


async def test_response_schema_extracts_and_validates_the_answer_json(stack: Stack) -> None:
    admin = stack.url.split("/e/")[0] + "/admin/api"
    schema = {"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}}
    patched = await stack.client.patch(
        f"{admin}/endpoints/{stack.endpoint_id}",
        json={"settings": {"response_schema": schema}},
        headers=admin_headers(),
    )
    assert patched.status_code == 200, patched.text
    good = (await stack.post({"query": 'here: {"n": 3,} done', "user": "u1"})).json()
    assert good["data"] == {"n": 3} and good["schema_error"] is None and not good["structured_fallback"]
    before = (await stack.sim_stats())["generation_requests"]
    wrong = (await stack.post({"query": '{"n": "three"}', "user": "u1"})).json()
    assert wrong["data"] == {"n": "three"}, json.dumps(wrong)
    assert "n: 'three' is not of type 'integer'" in wrong["schema_error"]
    assert wrong["answer"] == 'You said: {"n": "three"}'  # the raw answer travels along
    asked = [r["body"] for r in (await stack.sim_stats())["recent_requests"] if r["path"].endswith("-messages")]
    assert (await stack.sim_stats())["generation_requests"] == before + 2  # re-asked once, with the errors
    assert "'three' is not of type 'integer'" in asked[-1]["query"] and '"required": ["n"]' in asked[-1]["query"]
    fixed = (await stack.post({"query": 'n? [[say:{"n": "x"}]][[say:{"n": 4}]]', "user": "u1"})).json()
    assert fixed["data"] == {"n": 4} and fixed["schema_error"] is None
    not_json = (await stack.post({"query": "[[say:no json here]]", "user": "u1"})).json()
    assert not_json["schema_error"] == "answer: the answer is not JSON" and not_json["data"] is None
    patched = await stack.client.patch(
        f"{admin}/endpoints/{stack.endpoint_id}",
        json={"settings": {"response_schema": schema, "schema_fallback": {"n": 0}}},
        headers=admin_headers(),
    )
    assert patched.status_code == 200, patched.text
    fallen = (await stack.post({"query": "[[say:still no json]]", "user": "u1"})).json()
    assert fallen["data"] == {"n": 0} and fallen["structured_fallback"] is True
    bad_schema = await stack.client.patch(
        f"{admin}/endpoints/{stack.endpoint_id}",
        json={"settings": {"response_schema": {"type": "nope"}}},
        headers=admin_headers(),
    )
    assert bad_schema.status_code == 422
