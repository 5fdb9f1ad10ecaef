"""The Dify plugin runtime's parts without a plugin process: the line protocol, session
multiplexing and reverse-call answers, the raw request, Python discovery, requirements."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any, cast

import pytest

from gateway.difyplugins.runtime import (
    PluginConnection,
    PluginRaised,
    PythonNotFound,
    ReverseCallError,
    ReverseCalls,
    find_python,
    permission_denied,
    requirements_of,
)
from gateway.difyplugins.runtime.protocol import decode_line
from gateway.difyplugins.runtime.rawhttp import raw_request
from gateway.exceptions import ConfigurationError, PluginUnavailable
from gateway.host.context import PluginContext
from gateway.plugin import Headers, Request

pytestmark = pytest.mark.anyio


def test_only_event_lines_are_messages() -> None:
    assert decode_line(b'{"version": "0.0.1", "name": "echo"}') is None  # the configuration a local plugin writes first
    assert decode_line(b"") is None and decode_line(b"not json") is None
    message = decode_line(b'{"event": "session", "session_id": "s1", "data": {"type": "end", "data": {}}}\n')
    assert message is not None and (message.event, message.session_id) == ("session", "s1")


class Wire:
    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []

    async def send(self, line: bytes) -> None:
        assert line.endswith(b"\n") and line.count(b"\n") == 1
        self.lines.append(json.loads(line))


def _session_line(session_id: str, kind: str, data: dict[str, Any]) -> bytes:
    return json.dumps({"event": "session", "session_id": session_id, "data": {"type": kind, "data": data}}).encode()


async def test_sessions_are_multiplexed_by_id() -> None:
    wire = Wire()
    connection = PluginConnection("a/b", wire.send, logging.getLogger("test"))

    async def no_calls(data: dict[str, Any]) -> Any:
        raise AssertionError("no reverse call expected")
        yield  # pragma: no cover

    first = await connection.open({"type": "endpoint"}, no_calls)
    second = await connection.open({"type": "endpoint"}, no_calls)
    assert [line["session_id"] for line in wire.lines] == [first.id, second.id]
    for session_id, text in ((second.id, "two"), (first.id, "one")):
        message = decode_line(_session_line(session_id, "stream", {"text": text}))
        assert message is not None
        connection.receive(message)
        end = decode_line(_session_line(session_id, "end", {}))
        assert end is not None
        connection.receive(end)
    assert [chunk async for chunk in first] == [{"text": "one"}]
    assert [chunk async for chunk in second] == [{"text": "two"}]


async def test_reverse_calls_are_answered_and_a_lost_connection_fails_open_sessions() -> None:
    wire = Wire()
    connection = PluginConnection("a/b", wire.send, logging.getLogger("test"))

    async def answer(data: dict[str, Any]) -> Any:
        if data["type"] == "storage":
            yield {"data": "ok"}
        else:
            raise ReverseCallError(permission_denied(data["type"]))

    session = await connection.open({"type": "endpoint"}, answer)
    for kind, request_id in (("storage", "r1"), ("llm", "r2")):
        message = decode_line(
            _session_line(session.id, "invoke", {"type": kind, "backwards_request_id": request_id, "request": {}})
        )
        assert message is not None
        connection.receive(message)
    for _ in range(20):
        if len(wire.lines) == 4:
            break
        await asyncio.sleep(0)
    answers = [(line["data"]["backwards_request_id"], line["data"]["event"]) for line in wire.lines[1:]]
    assert sorted(answers) == [("r1", "end"), ("r1", "response"), ("r2", "error")]
    error = next(line for line in wire.lines if line["data"].get("event") == "error")
    assert error["event"] == "backwards_response"
    assert error["data"]["message"] == "permission denied, you need to enable llm access in plugin manifest"
    connection.lost("exit code 1", retry_after=2.0)
    with pytest.raises(PluginUnavailable) as raised:
        [chunk async for chunk in session]
    assert raised.value.retry_after == 2.0
    with pytest.raises(PluginUnavailable):
        await connection.open({"type": "endpoint"}, answer)


async def test_a_session_error_is_raised_to_its_reader() -> None:
    wire = Wire()
    connection = PluginConnection("a/b", wire.send, logging.getLogger("test"))

    async def none(data: dict[str, Any]) -> Any:
        yield None  # pragma: no cover

    session = await connection.open({}, none)
    message = decode_line(_session_line(session.id, "error", {"error_type": "KeyError", "message": "'x'"}))
    assert message is not None
    connection.receive(message)
    with pytest.raises(PluginRaised) as raised:
        [chunk async for chunk in session]
    assert raised.value.kind == "KeyError"


async def test_kinds_the_gateway_cannot_serve_are_refused_saying_so() -> None:
    calls = ReverseCalls(ctx=cast(PluginContext, None), storage=cast(Any, None), declared={"llm"}, user="u")
    with pytest.raises(ReverseCallError) as declared:
        [item async for item in calls({"type": "llm", "backwards_request_id": "1", "request": {}})]
    assert "served only inside Dify" in declared.value.message
    with pytest.raises(ReverseCallError) as undeclared:
        [item async for item in calls({"type": "tool", "backwards_request_id": "2", "request": {}})]
    assert undeclared.value.message == "permission denied, you need to enable tool access in plugin manifest"


def test_the_raw_request_keeps_the_query_and_passes_the_client_address() -> None:
    request = Request(
        method="POST",
        path="/hook/a b",
        query_string="b=2&a=%201",
        headers=Headers(
            [
                ("host", "gw.example"),
                ("x-forwarded-for", "6.6.6.6"),
                ("x_forged", "1"),
                ("transfer-encoding", "chunked"),
                ("x-a", "1"),
                ("x-a", "2"),
            ]
        ),
        body=b"hello",
        endpoint_id="ep_1",
        endpoint_url="http://gw.example/e/t",
        received_at=0.0,
        client_ip="203.0.113.9",
    )
    raw = raw_request(request)
    head, body = raw.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /hook/a%20b?b=2&a=%201 HTTP/1.1"
    assert "x-forwarded-for: 203.0.113.9" in lines and "x-real-ip: 203.0.113.9" in lines
    assert "x-forwarded-for: 6.6.6.6" not in lines
    assert not any(line.startswith(("x_forged", "transfer-encoding")) for line in lines)
    assert lines.count("x-a: 1") == 1 and lines.count("x-a: 2") == 1
    assert "content-length: 5" in lines and body == b"hello"


async def test_a_python_older_than_3_12_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(PythonNotFound) as missing:
        await find_python(str(tmp_path / "no-python"))
    assert "does not run" in missing.value.message
    old = next(iter(sorted(Path.home().glob(".pyenv/versions/3.1[01]*/bin/python"))), None)
    if old is None:
        pytest.skip("no Python < 3.12 here to point at")
    with pytest.raises(PythonNotFound) as refused:
        await find_python(str(old))
    assert "need Python 3.12 or newer" in refused.value.message


def test_requirements_come_from_the_package_and_options_are_refused(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("dify_plugin>=0.7  # the SDK\n\nrequests\n")
    found = requirements_of(tmp_path)
    assert found.lines == ("dify_plugin>=0.7", "requests")
    assert found.digest("3.12.1") != found.digest("3.13.0")  # one venv per requirements and Python
    (tmp_path / "requirements.txt").write_text("--index-url http://evil/simple\ndify_plugin\n")
    with pytest.raises(ConfigurationError):
        requirements_of(tmp_path)
    (tmp_path / "requirements.txt").unlink()
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "p"\ndependencies = ["dify_plugin>=0.7"]\n')
    assert requirements_of(tmp_path).lines == ("dify_plugin>=0.7",)


def test_pip_runs_without_the_gateways_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.settings import environment_without_settings

    monkeypatch.setenv("GATEWAY_ADMIN_TOKEN", "admin-" + "x" * 40)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    environment = environment_without_settings()
    assert "GATEWAY_ADMIN_TOKEN" not in environment
    assert environment["HTTPS_PROXY"] == "http://proxy.internal:3128"  # pip still reaches its index
