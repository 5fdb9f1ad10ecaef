"""The Dify simulator, driven by DifyClient (in-process via ASGITransport, and once on real uvicorn)."""

from __future__ import annotations

import random
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import httpx
import pytest

from gateway.clock import FakeClock, SystemClock
from gateway.dify import (
    AnswerCutOff,
    AskRequest,
    DifyApp,
    DifyClient,
    DifyStreamError,
    RetryPolicy,
    WorkflowFailed,
    make_http_client,
)
from gateway.dify.models import AppMode
from gateway.exceptions import ConfigurationError, UpstreamError
from gateway.simulator.app import create_simulator_app
from gateway.simulator.config import SimulatorConfig
from gateway.simulator.script import tokenize
from gateway.simulator.server import simulator_server
from gateway.simulator.state import SimulatorState

pytestmark = pytest.mark.anyio
BASE = "http://sim.test/v1"
MODES = ["chat", "agent-chat", "agent", "advanced-chat", "completion", "workflow"]
Factory = Callable[..., Any]


def dify_app(mode: AppMode = "chat", key: str = "app-simulator") -> DifyApp:
    return DifyApp(name="sim", base_url=BASE, api_key=key, mode=mode)


def ask(query: str = "hello wörld", **kw: Any) -> AskRequest:
    return AskRequest(user=kw.pop("user", "tester"), query=query, inputs=kw.pop("inputs", {"query": query}), **kw)


class Sim:
    """An in-process simulator with an httpx client and a DifyClient on a FakeClock."""

    def __init__(self, http: httpx.AsyncClient, state: SimulatorState, dify: DifyClient) -> None:
        self.http, self.state, self.dify = http, state, dify

    async def stats(self) -> dict[str, Any]:
        return (await self.http.get("http://sim.test/_sim/stats")).json()  # type: ignore[no-any-return]

    async def post(self, path: str, body: Any, key: str = "app-simulator") -> httpx.Response:
        return await self.http.post(BASE + path, json=body, headers={"Authorization": f"Bearer {key}"})


@pytest.fixture
async def make_sim() -> AsyncIterator[Factory]:
    clients: list[httpx.AsyncClient] = []

    async def make(clock: Any = None, **config: Any) -> Sim:
        app = create_simulator_app(SimulatorConfig(**config), clock=clock or FakeClock())
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app))
        clients.append(http)
        dify = DifyClient(http, clock=FakeClock(), rng=random.Random(1), retry=RetryPolicy(max_attempts=3))
        return Sim(http, app.state.simulator, dify)

    yield make
    for http in clients:
        await http.aclose()


# --- modes ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_every_mode_streams_an_echo(make_sim: Factory, mode: AppMode) -> None:
    sim = await make_sim(mode=mode)
    app = dify_app(mode)
    assert (await sim.dify.info(app)).mode == mode
    async with sim.dify.stream(app, ask("héllo 🌍 world")) as stream:
        texts = [d.text async for d in stream.deltas() if d.kind == "text"]
    answer = stream.answer
    assert answer.text == "".join(texts) == "You said: héllo 🌍 world"
    assert len(texts) == 5  # word-ish tokens
    assert answer.complete and answer.task_id
    assert answer.usage is not None and answer.usage.total_tokens == 17 + 3 + 5
    if mode == "workflow":
        assert answer.conversation_id is None and answer.outputs == {"text": answer.text}
        assert answer.usage.prompt_tokens is None
    else:
        assert answer.conversation_id and answer.message_id
        assert answer.usage.prompt_tokens == 20 and answer.usage.currency == "USD"
    if mode == "agent-chat":
        assert answer.thoughts and answer.thoughts[0].thought == answer.text
    stats = await sim.stats()
    assert stats["streams_completed"] == 1 and stats["generation_requests"] == 1 and stats["active_tasks"] == 0


async def test_conversation_is_reused_and_history_kept(make_sim: Factory) -> None:
    sim = await make_sim()
    first = await sim.dify.ask(dify_app(), ask("one"))
    second = await sim.dify.ask(dify_app(), ask("two", conversation_id=first.conversation_id))
    assert second.conversation_id == first.conversation_id and not second.conversation_reset
    headers = {"Authorization": "Bearer app-simulator"}
    history = await sim.http.get(
        BASE + "/messages", params={"conversation_id": first.conversation_id, "user": "tester"}, headers=headers
    )
    assert [m["query"] for m in history.json()["data"]] == ["one", "two"]
    listed = (await sim.http.get(BASE + "/conversations", params={"user": "tester"}, headers=headers)).json()
    assert [c["id"] for c in listed["data"]] == [first.conversation_id]
    assert (await sim.http.get(BASE + "/conversations", params={"user": "else"}, headers=headers)).json()["data"] == []
    other_user = await sim.http.get(
        BASE + "/messages", params={"conversation_id": first.conversation_id, "user": "else"}, headers=headers
    )
    assert other_user.status_code == 404
    missing = await sim.http.get(BASE + "/messages", params={"user": "tester"}, headers=headers)
    assert missing.status_code == 400
    deleted = await sim.http.request(
        "DELETE", BASE + f"/conversations/{first.conversation_id}", json={"user": "tester"}, headers=headers
    )
    assert deleted.status_code == 204
    again = await sim.http.request(
        "DELETE", BASE + f"/conversations/{first.conversation_id}", json={"user": "tester"}, headers=headers
    )
    assert again.status_code == 404


async def test_unknown_conversation_is_404_and_the_client_restarts_it(make_sim: Factory) -> None:
    sim = await make_sim()
    response = await sim.post("/chat-messages", {"query": "q", "inputs": {}, "user": "u", "conversation_id": "nope"})
    assert response.status_code == 404
    assert response.json() == {"code": "not_found", "message": "Conversation Not Exists.", "status": 404}
    answer = await sim.dify.ask(dify_app(), ask("hi", conversation_id="stale-id"))
    assert answer.conversation_reset and answer.conversation_id != "stale-id"


async def test_blocking_mode(make_sim: Factory) -> None:
    for mode in ("chat", "advanced-chat", "completion"):
        sim = await make_sim(mode=mode)
        path = "/completion-messages" if mode == "completion" else "/chat-messages"
        inputs = {"query": "hi"} if mode == "completion" else {}  # a completion app's text is an input
        body = (await sim.post(path, {"query": "hi", "inputs": inputs, "user": "u"})).json()  # blocking: the default
        assert body["event"] == "message" and body["answer"] == "You said: hi" and body["mode"] == mode
        assert body["metadata"]["usage"]["total_tokens"] == 17 + 1 + 3
    sim = await make_sim(mode="workflow")
    body = (
        await sim.post("/workflows/run", {"inputs": {"query": "x"}, "user": "u", "response_mode": "blocking"})
    ).json()
    assert body["data"]["status"] == "succeeded" and body["data"]["outputs"] == {"text": "You said: x"}
    failed = await sim.post("/workflows/run", {"inputs": {"query": "[[fault:workflow-failed]]"}, "user": "u"})
    assert failed.json()["data"]["status"] == "failed"
    for mode in ("agent-chat", "agent"):
        sim = await make_sim(mode=mode)
        rejected = await sim.post("/chat-messages", {"query": "hi", "inputs": {}, "user": "u"})
        assert rejected.status_code == 400 and "does not support blocking" in rejected.json()["message"]
    sim = await make_sim()
    error = await sim.post("/chat-messages", {"query": "[[fault:error-first]]", "inputs": {}, "user": "u"})
    assert error.status_code == 400 and error.json()["code"] == "completion_request_error"


@pytest.mark.parametrize(
    ("mode", "path", "body", "status", "code"),
    [
        ("chat", "/chat-messages", {"query": "q", "inputs": {}}, 400, "invalid_param"),  # no user
        ("chat", "/chat-messages", {"query": "q", "user": "u"}, 400, "invalid_param"),  # no inputs
        ("chat", "/chat-messages", {"inputs": {}, "user": "u"}, 400, "invalid_param"),  # no query
        (
            "chat",
            "/chat-messages",
            {"query": "q", "inputs": {}, "user": "u", "conversation_id": ""},
            400,
            "invalid_param",
        ),
        (
            "chat",
            "/chat-messages",
            {"query": "q", "inputs": {}, "user": "u", "response_mode": "x"},
            400,
            "invalid_param",
        ),
        ("completion", "/chat-messages", {"query": "q", "inputs": {}, "user": "u"}, 400, "not_chat_app"),
        ("chat", "/completion-messages", {"inputs": {}, "user": "u"}, 400, "app_unavailable"),
        ("chat", "/workflows/run", {"inputs": {}, "user": "u"}, 400, "not_workflow_app"),
        ("chat", "/chat-messages", [1], 400, "invalid_param"),
    ],
)
async def test_request_validation(make_sim: Factory, mode: str, path: str, body: Any, status: int, code: str) -> None:
    sim = await make_sim(mode=mode)
    response = await sim.post(path, body)
    assert (response.status_code, response.json()["code"], response.json()["status"]) == (status, code, status)


async def test_invalid_json_body(make_sim: Factory) -> None:
    sim = await make_sim()
    response = await sim.http.post(
        BASE + "/chat-messages", content=b"{nope", headers={"Authorization": "Bearer app-simulator"}
    )
    assert response.status_code == 400


async def test_auth(make_sim: Factory) -> None:
    sim = await make_sim(api_keys=frozenset({"app-one", "app-two"}))
    assert (await sim.http.get(BASE + "/info")).json()["code"] == "unauthorized"
    wrong = await sim.http.get(BASE + "/info", headers={"Authorization": "Bearer app-three"})
    assert wrong.status_code == 401 and wrong.json()["message"] == "Access token is invalid"
    assert (await sim.http.get(BASE + "/info", headers={"Authorization": "Bearer app-two"})).status_code == 200
    with pytest.raises(UpstreamError, match="the app API key was rejected"):
        await sim.dify.ask(dify_app(key="app-zzz"), ask())
    assert (await sim.stats())["generation_requests"] == 0


async def test_parameters(make_sim: Factory) -> None:
    sim = await make_sim()
    parameters = await sim.dify.parameters(dify_app())
    assert parameters["user_input_form"] == [] and parameters["system_parameters"]["file_size_limit"] == 15


async def test_fixed_answer(make_sim: Factory) -> None:
    sim = await make_sim(answer="Always the same.")
    assert (await sim.dify.ask(dify_app(), ask("anything"))).text == "Always the same."


# --- faults ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("fault", "calls"), [("500", 3), ("503", 3), ("429", 3), ("429-quota", 1), ("400", 1)])
async def test_http_faults_and_retries(make_sim: Factory, fault: str, calls: int) -> None:
    sim = await make_sim()
    with pytest.raises(UpstreamError) as caught:
        await sim.dify.ask(dify_app(), ask(f"hi [[fault:{fault}]]"))
    assert caught.value.retryable is (calls == 3)
    stats = await sim.stats()
    assert stats["generation_requests"] == calls and stats["faults_injected"] == [fault] * calls


async def test_fail_next_then_recover(make_sim: Factory) -> None:
    sim = await make_sim(fail_next=2, fail_with="429")
    answer = await sim.dify.ask(dify_app(), ask("hi"))
    assert answer.text == "You said: hi"
    stats = await sim.stats()
    assert stats["generation_requests"] == 3 and stats["faults_injected"] == ["429", "429"]


async def test_control_api_sets_faults_and_resets(make_sim: Factory) -> None:
    sim = await make_sim()
    assert (
        await sim.http.post("http://sim.test/_sim/faults", json={"fail_next": 5, "fault": "500"})
    ).status_code == 200
    with pytest.raises(UpstreamError):
        await sim.dify.ask(dify_app(), ask())
    assert (await sim.stats())["fail_next"] == 2
    bad = await sim.http.post("http://sim.test/_sim/faults", json={"fail_next": -1, "fault": "500"})
    assert bad.status_code == 400
    assert (await sim.http.post("http://sim.test/_sim/faults", content=b"[")).status_code == 400
    await sim.http.post("http://sim.test/_sim/reset")
    stats = await sim.stats()
    assert stats["fail_next"] == 0 and stats["requests_total"] == 0 and stats["conversations"] == 0
    assert (await sim.dify.ask(dify_app(), ask("ok"))).text == "You said: ok"


async def test_config_fault_rate(make_sim: Factory) -> None:
    sim = await make_sim(fault="429-quota", fault_rate=0.5, seed=3)
    outcomes = []
    for _ in range(20):
        try:
            await sim.dify.ask(dify_app(), ask())
            outcomes.append("ok")
        except UpstreamError:
            outcomes.append("quota")
    assert 3 < outcomes.count("quota") < 17


@pytest.mark.parametrize("mode", ["chat", "workflow"])
async def test_error_midstream_is_not_retried(make_sim: Factory, mode: AppMode) -> None:
    sim = await make_sim(mode=mode)
    with pytest.raises(DifyStreamError) as caught:
        await sim.dify.ask(dify_app(mode), ask("one two three four [[fault:error-midstream]]"))
    assert caught.value.partial is not None and caught.value.partial.text == "You said: one"
    assert caught.value.upstream_code == "internal_server_error"
    assert (await sim.stats())["generation_requests"] == 1


async def test_error_first(make_sim: Factory) -> None:
    sim = await make_sim()
    with pytest.raises(DifyStreamError, match="Dify rejected"):
        await sim.dify.ask(dify_app(), ask("[[fault:error-first]]"))


@pytest.mark.parametrize(("mode", "error"), [("workflow", WorkflowFailed), ("advanced-chat", WorkflowFailed),
                                             ("chat", DifyStreamError)])  # fmt: skip
async def test_workflow_failed(make_sim: Factory, mode: AppMode, error: type[Exception]) -> None:
    sim = await make_sim(mode=mode)
    with pytest.raises(error):
        await sim.dify.ask(dify_app(mode), ask("a b c [[fault:workflow-failed]]"))


async def test_disconnect_is_a_cut_off_and_stops_the_task(make_sim: Factory) -> None:
    sim = await make_sim()
    with pytest.raises(AnswerCutOff) as caught:
        await sim.dify.ask(dify_app(), ask("one two three four [[fault:disconnect]]", user="slack:T:U"))
    assert caught.value.partial is not None and caught.value.partial.text == "You said: one"
    stops = (await sim.stats())["stops"]
    assert stops == [
        {
            "task_id": caught.value.partial.task_id,
            "user": "slack:T:U",
            "route": "chat",
            "matched": True,
            "running": False,
        }
    ]


async def test_stall_then_close(make_sim: Factory) -> None:
    sim = await make_sim(mode="advanced-chat")
    with pytest.raises(AnswerCutOff):  # on a FakeClock the stall passes at once, then the stream ends
        await sim.dify.ask(dify_app("advanced-chat"), ask("[[fault:stall]]"))


async def test_slow_first_token_sends_pings(make_sim: Factory) -> None:
    sim = await make_sim(ping_interval=10, slow_first_token_latency=25)
    async with sim.dify.stream(dify_app(), ask("hi [[fault:slow]]")) as stream:
        kinds = [d.kind async for d in stream.deltas()]
    assert kinds[:2] == ["ping", "ping"] and "text" in kinds
    assert (await sim.stats())["pings_sent"] == 2


async def test_replace_and_malformed(make_sim: Factory) -> None:
    sim = await make_sim()
    async with sim.dify.stream(dify_app(), ask("hi [[fault:replace]] [[fault:unknown-name]]")) as stream:
        kinds = [d.kind async for d in stream.deltas()]
    assert kinds[-1] == "replace" and stream.answer.replaced and "moderated" in stream.answer.text
    assert (await sim.dify.ask(dify_app(), ask("hi [[fault:malformed]]"))).text == "You said: hi"


# --- stops ----------------------------------------------------------------------------------------


async def test_stop_ends_a_running_stream(make_sim: Factory) -> None:
    sim = await make_sim(clock=SystemClock(), first_token_latency=0, tokens_per_second=100)
    words = " ".join(["word"] * 300)  # ~3 s of tokens
    result: dict[str, Any] = {}

    async def run() -> None:
        result["answer"] = await sim.dify.ask(dify_app(), ask(words, user="alice"))

    async with anyio.create_task_group() as group:
        group.start_soon(run)
        while not sim.state.tasks:  # noqa: ASYNC110 (polling the simulator's own state)
            await anyio.sleep(0.01)
        (task_id,) = sim.state.tasks
        wrong_user = await sim.post(f"/chat-messages/{task_id}/stop", {"user": "mallory"})
        assert wrong_user.json() == {"result": "success"}  # like Dify: a mismatch looks like success
        assert sim.state.tasks  # ...but changes nothing
        await sim.dify.stop(dify_app(), task_id, "alice")
    answer = result["answer"]
    assert answer.complete and len(answer.text) < len("You said: " + words)  # ended early with message_end
    stops = (await sim.stats())["stops"]
    assert [(s["user"], s["matched"], s["running"]) for s in stops] == [("mallory", False, True), ("alice", True, True)]


async def test_stopped_workflow_reports_stopped(make_sim: Factory) -> None:
    sim = await make_sim(clock=SystemClock(), mode="workflow", first_token_latency=0, tokens_per_second=100)
    errors: list[Exception] = []

    async def run() -> None:
        try:
            await sim.dify.ask(dify_app("workflow"), ask(" ".join(["w"] * 300)))
        except WorkflowFailed as exc:
            errors.append(exc)

    async with anyio.create_task_group() as group:
        group.start_soon(run)
        while not sim.state.tasks:  # noqa: ASYNC110 (polling the simulator's own state)
            await anyio.sleep(0.01)
        (task_id,) = sim.state.tasks
        await sim.dify.stop(dify_app("workflow"), task_id, "someone-else")  # workflow stops ignore the user
    assert len(errors) == 1 and "stopped" in str(errors[0])


async def test_list_limit_parsing(make_sim: Factory) -> None:
    sim = await make_sim()
    for _ in range(3):
        await sim.dify.ask(dify_app(), ask())
    headers = {"Authorization": "Bearer app-simulator"}
    for limit, count, more in (("2", 2, True), ("oops", 3, False), ("0", 1, True)):
        page = await sim.http.get(BASE + "/conversations", params={"user": "tester", "limit": limit}, headers=headers)
        assert (len(page.json()["data"]), page.json()["has_more"]) == (count, more)


async def test_stop_validation_and_workflow_stop(make_sim: Factory) -> None:
    sim = await make_sim(mode="workflow")
    assert (await sim.post("/workflows/tasks/t1/stop", {})).status_code == 400
    await sim.dify.stop(dify_app("workflow"), "t1", "anyone")
    stop = (await sim.stats())["stops"][0]
    assert stop == {"task_id": "t1", "user": "anyone", "route": "workflow", "matched": False, "running": False}


# --- pure parts -----------------------------------------------------------------------------------


def test_tokenize_round_trips() -> None:
    for text in ["You said: hi", "  leading", "trailing  ", "", "one", "a\nb  c", "🌍 héllo"]:
        assert "".join(tokenize(text)) == text


def test_config_validation() -> None:
    assert SimulatorConfig(fault="stall").fault == "stall"  # a known fault is taken, an unknown one refused
    bad: dict[str, Any]
    for bad in ({"mode": "x"}, {"fault": "x"}, {"fail_with": "x"}, {"api_keys": frozenset()}, {"ping_interval": 0},
                {"fault_rate": 2.0}):  # fmt: skip
        with pytest.raises(ConfigurationError):
            SimulatorConfig(**bad)


# --- live -----------------------------------------------------------------------------------------


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.mark.live
async def test_live_uvicorn_streams_incrementally_with_pings_and_stop() -> None:
    config = SimulatorConfig(first_token_latency=0.35, tokens_per_second=20, ping_interval=0.1, answer="echo")
    sock = _free_socket()
    port = sock.getsockname()[1]
    server = simulator_server("127.0.0.1", port, config)
    http = make_http_client(use_aiohttp=True, max_connections=10)
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(server.serve, [sock])
            while not server.started:  # noqa: ASYNC110 (uvicorn exposes no event)
                await anyio.sleep(0.01)
            dify = DifyClient(http, clock=SystemClock())
            app = DifyApp("live", f"http://127.0.0.1:{port}/v1", "app-simulator", "chat")
            stamps: list[tuple[str, float]] = []
            async with dify.stream(app, ask("one two three four five six seven eight")) as stream:
                async for delta in stream.deltas():
                    stamps.append((delta.kind, time.monotonic()))
            texts = [t for kind, t in stamps if kind == "text"]
            assert len(texts) == 10 and texts[-1] - texts[0] > 0.3  # 10 tokens at 20/s arrive spread out
            assert [kind for kind, _ in stamps[:3]] == ["ping"] * 3  # 0.35 s of silence, a ping every 0.1 s
            assert stream.answer.text == "You said: one two three four five six seven eight"

            async with dify.stream(app, ask("a b c d e f g h i j k l m n o p", user="bob")) as stream:
                async for delta in stream.deltas():
                    if delta.kind == "text":
                        break  # leaving the block closes the response and stops the task
            stats = (await http.get(f"http://127.0.0.1:{port}/_sim/stats")).json()
            (stop,) = stats["stops"]
            assert stop["task_id"] == stream.task_id and stop["user"] == "bob" and stop["matched"]
            for _ in range(100):
                stats = (await http.get(f"http://127.0.0.1:{port}/_sim/stats")).json()
                if stats["active_tasks"] == 0:
                    break
                await anyio.sleep(0.02)
            assert stats["active_tasks"] == 0 and stats["pings_sent"] >= 3
            server.should_exit = True
    finally:
        await http.aclose()
        sock.close()


# --- scripted answers and uploads -------------------------------------------------------------------


async def test_say_markers_script_the_answers_of_a_conversation(make_sim: Factory) -> None:
    sim = await make_sim()
    first = await sim.dify.ask(dify_app(), ask('give JSON [[say:{"a": 1,]][[say:{"a": 1}]]'))
    assert first.text == '{"a": 1,'
    second = await sim.dify.ask(dify_app(), ask("fix it", conversation_id=first.conversation_id))
    assert second.text == '{"a": 1}'
    third = await sim.dify.ask(dify_app(), ask("again", conversation_id=first.conversation_id))
    assert third.text == '{"a": 1}'  # the last one repeats
    assert (await sim.dify.ask(dify_app(), ask("plain"))).text == "You said: plain"


async def test_say_markers_without_conversations_follow_the_repeated_request(make_sim: Factory) -> None:
    sim = await make_sim(mode="completion")
    app = dify_app("completion")
    texts = [(await sim.dify.ask(app, ask("q [[say:one]] [[say:two]]"))).text for _ in range(3)]
    assert texts == ["one", "two", "two"]


async def test_uploads_are_stored_per_user_and_referenced_as_local_files(make_sim: Factory) -> None:
    sim = await make_sim(file_upload=True, max_upload_bytes=100)
    app = dify_app()
    params = await sim.dify.parameters(app)
    image = params["file_upload"]["image"]
    assert image["enabled"] and "local_file" in image["transfer_methods"]
    record = await sim.dify.upload(app, user="tester", name="a.png", content=b"\x89PNG", mime_type="image/png")
    assert record["mime_type"] == "image/png" and record["size"] == 4 and record["extension"] == "png"
    local = {"type": "image", "transfer_method": "local_file", "upload_file_id": record["id"]}
    answer = await sim.dify.ask(app, ask("look", files=(local,)))
    assert answer.text == "You said: look"
    with pytest.raises(UpstreamError) as other_user:
        await sim.dify.ask(app, ask("look", user="someone-else", files=(local,)))
    assert other_user.value.upstream_status == 400
    with pytest.raises(UpstreamError) as too_big:
        await sim.dify.upload(app, user="tester", name="b.png", content=b"x" * 101, mime_type="image/png")
    assert too_big.value.upstream_code == "file_too_large"
    with pytest.raises(UpstreamError) as bad_type:
        await sim.dify.upload(app, user="tester", name="x.exe", content=b"MZ", mime_type="application/x-msdownload")
    assert bad_type.value.upstream_code == "unsupported_file_type"
    plain = await make_sim()
    with pytest.raises(UpstreamError):
        await plain.dify.upload(app, user="tester", name="a.png", content=b"\x89PNG", mime_type="image/png")
