"""`apps add-key | retire-key` and `endpoints rotate-secret | retire-secret` from the command line."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import respx
from click.testing import CliRunner, Result

from gateway.cli.main import cli

DIFY = "https://dify.test/v1"
Invoke = Callable[..., Result]


@pytest.fixture
def run(tmp_path: Path) -> Invoke:
    cleared: dict[str, str | None] = {name: None for name in os.environ if name.startswith("GATEWAY_")}
    env = {**cleared, "GATEWAY_STORE": f"sqlite:///{tmp_path / 'gw.db'}", "GATEWAY_USE_AIOHTTP": "false"}

    def invoke(*args: str, input: str | None = None) -> Result:
        result = CliRunner().invoke(cli, list(args), input=input, env=env)
        assert "Traceback" not in result.output
        return result

    return invoke


def _info(request: httpx.Request) -> httpx.Response:
    key = request.headers["authorization"].removeprefix("Bearer ")
    if key in ("app-old", "app-new"):
        return httpx.Response(200, json={"name": "Support bot", "mode": "chat"})
    return httpx.Response(401, json={"code": "unauthorized", "message": "Access token is invalid", "status": 401})


@respx.mock
def test_an_app_key_is_added_after_a_check_and_retired(run: Invoke) -> None:
    info = respx.get(f"{DIFY}/info").mock(side_effect=_info)
    assert run("apps", "add", "support", "--base-url", DIFY, "--mode", "chat", "--key", "app-old").exit_code == 0
    refused = run("apps", "add-key", "support", "app-wrong")
    assert refused.exit_code == 1 and "rejected" in refused.stderr and "app-wrong" not in refused.output
    added = run("apps", "add-key", "support", "-", "--grace", "2h", input="app-new\n")
    assert added.exit_code == 0, added.output
    assert "the old one is a fallback until" in added.stdout and "app-old" not in added.stdout
    assert info.calls[-2].request.headers["authorization"] == "Bearer app-new"  # checked with a real request
    shown = json.loads(run("apps", "show", "support", "--json").stdout)
    assert shown["previous_key"] == "••••••••" and shown["previous_key_until"]
    assert run("apps", "retire-key", "support").exit_code == 0
    assert json.loads(run("apps", "show", "support", "--json").stdout)["previous_key"] is None
    bad_grace = run("apps", "add-key", "support", "app-new", "--grace", "soon")
    assert bad_grace.exit_code == 2 and "not a duration" in bad_grace.output


def test_an_endpoint_secret_is_rotated_and_retired(run: Invoke) -> None:
    created = run("endpoints", "create", "--plugin", "echo", "--set", "token=first-token", "--json")
    endpoint_id = json.loads(created.stdout)["id"]
    rotated = run("endpoints", "rotate-secret", endpoint_id, "--value", "-", "--grace", "30m", input="second-token\n")
    assert rotated.exit_code == 0, rotated.output
    assert "token of" in rotated.stdout and "accepted until" in rotated.stdout and "first-token" not in rotated.stdout
    shown = json.loads(run("endpoints", "show", endpoint_id, "--json").stdout)
    assert list(shown["previous_secrets_expire_at"]) == ["token"]
    assert run("endpoints", "retire-secret", endpoint_id).exit_code == 0
    assert json.loads(run("endpoints", "show", endpoint_id, "--json").stdout)["previous_secrets_expire_at"] == {}
    generated = run("endpoints", "rotate-secret", endpoint_id)
    assert generated.exit_code == 1 and "give the new value" in generated.stderr
