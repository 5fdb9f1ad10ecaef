"""The `dify-gateway` command line, driven with click's CliRunner on a throwaway SQLite store."""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from click.testing import CliRunner, Result

from gateway.cli.main import cli
from gateway.host.runtime import Gateway, open_gateway
from gateway.records.requestlog import RequestLogEntry
from gateway.security.crypto import MASK
from gateway.settings import Settings, bootstrap
from gateway.storage.base import Job
from tests.support.difyplugins import shared_venv_dir
from tests.support.gateway import refused_port

KEY = "app-" + "K" * 28
ENDPOINT_TOKEN = "bearer-" + "E" * 30
DIFY = "https://dify.test/v1"

Invoke = Callable[..., Result]


def _runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)  # type: ignore[call-arg]  # click < 8.2 mixes stderr in by default
    except TypeError:  # click >= 8.2 always keeps result.stderr apart
        return CliRunner()


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'gw.db'}"


@pytest.fixture
def env(store_url: str) -> dict[str, str | None]:
    """Only GATEWAY_STORE: whatever the developer's shell exports must not leak in."""
    cleared: dict[str, str | None] = {
        name: None for name in os.environ if name.startswith("GATEWAY_") or name == "DIFY_APP_KEY"
    }
    # httpx's own transport, so respx can stand in for Dify.
    # One directory of Dify plugin venvs for every test: pip runs once, not once per install.
    venvs = str(shared_venv_dir())
    return {**cleared, "GATEWAY_STORE": store_url, "GATEWAY_USE_AIOHTTP": "false", "GATEWAY_PLUGIN_VENV_DIR": venvs}


@pytest.fixture
def invoke(env: dict[str, str | None]) -> Invoke:
    runner = _runner()

    def invoke(*args: str, input: str | None = None, extra_env: dict[str, str] | None = None) -> Result:
        result = runner.invoke(cli, list(args), input=input, env={**env, **(extra_env or {})})
        assert "Traceback" not in result.output
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result

    return invoke


def ok(result: Result) -> Result:
    assert result.exit_code == 0, result.output
    return result


def as_json(result: Result) -> Any:
    return json.loads(ok(result).stdout)


def failed(result: Result, *fragments: str) -> str:
    """A clean failure: exit 1 and one `error:` line on stderr, no traceback."""
    assert result.exit_code == 1, result.output
    # (A first command may print the generated admin token before the error.)
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in message
    return message


def add_app(invoke: Invoke, name: str = "support") -> None:
    ok(invoke("apps", "add", name, "--base-url", DIFY, "--key", KEY, "--mode", "chat"))


def create_endpoint(invoke: Invoke, *args: str) -> dict[str, Any]:
    created: dict[str, Any] = as_json(invoke("endpoints", "create", "--plugin", "echo", *args, "--json"))
    return created


def with_gateway(store_url: str, action: Callable[[Gateway], Any]) -> Any:
    """Run `action` on a Gateway over the same store and secrets the CLI uses."""

    async def main() -> Any:
        gateway = await open_gateway(bootstrap(Settings(store=store_url)).settings)
        try:
            return await action(gateway)
        finally:
            await gateway.aclose()

    return asyncio.run(main())


# -- first run --------------------------------------------------------------------------------------


def test_the_first_command_generates_secrets_and_shows_the_token_once(invoke: Invoke, tmp_path: Path) -> None:
    first = ok(invoke("apps", "list"))
    secrets_file = tmp_path / "gw.secrets"
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    stored = json.loads(secrets_file.read_text())
    token = stored["admin_token"]
    assert len(token) >= 32
    assert token in first.stderr
    assert token not in first.stdout
    assert first.stderr.count(token) == 1
    assert stored["secret_key"] not in first.output

    second = ok(invoke("apps", "list"))
    assert token not in second.output
    assert "Generated" not in second.output
    assert json.loads(secrets_file.read_text()) == stored


def test_an_explicit_admin_token_is_never_printed(invoke: Invoke) -> None:
    token = "explicit-" + "x" * 40
    result = ok(invoke("apps", "list", extra_env={"GATEWAY_ADMIN_TOKEN": token}))
    assert token not in result.output
    assert "Generated" not in result.output


def test_version(invoke: Invoke) -> None:
    result = ok(invoke("--version"))
    assert "dify-gateway" in result.stdout


# -- configuration errors ---------------------------------------------------------------------------


def test_a_redis_store_without_an_admin_token_is_refused(invoke: Invoke, tmp_path: Path) -> None:
    result = invoke("apps", "list", extra_env={"GATEWAY_STORE": "redis://127.0.0.1:1/0"})
    failed(result, "GATEWAY_ADMIN_TOKEN")
    assert list(tmp_path.iterdir()) == []  # nothing generated


@pytest.mark.parametrize("token", ["changeme", "sk-1234", "short-token"])
def test_weak_admin_tokens_are_refused(invoke: Invoke, token: str) -> None:
    for extra in ({"GATEWAY_ADMIN_TOKEN": token}, {"GATEWAY_ADMIN_TOKEN": token, "GATEWAY_SECRET_KEY": "k" * 48}):
        result = invoke("apps", "list", extra_env=extra)
        failed(result, "GATEWAY_ADMIN_TOKEN")
        assert token not in result.stderr


def test_a_bad_variable_is_a_clean_error(invoke: Invoke) -> None:
    failed(invoke("apps", "list", extra_env={"GATEWAY_PORT": "eighty"}), "GATEWAY_PORT")


# -- apps -------------------------------------------------------------------------------------------


def test_app_lifecycle_keeps_the_key_masked(invoke: Invoke) -> None:
    added = as_json(invoke("apps", "add", "support", "--base-url", DIFY, "--key", KEY, "--mode", "chat", "--json"))
    assert added["name"] == "support"
    assert added["api_key"] == MASK
    assert KEY not in json.dumps(added)

    listed = ok(invoke("apps", "list"))
    assert "support" in listed.stdout
    assert DIFY in listed.stdout
    assert [a["name"] for a in as_json(invoke("apps", "list", "--json"))] == ["support"]

    shown = ok(invoke("apps", "show", "support"))
    assert f"api_key: {MASK}" in shown.stdout
    assert "mode: chat" in shown.stdout
    assert KEY not in shown.output
    assert as_json(invoke("apps", "show", "support", "--json"))["api_key"] == MASK

    updated = as_json(invoke("apps", "update", "support", "--mode", "workflow", "--json"))
    assert updated["mode"] == "workflow"

    assert ok(invoke("apps", "remove", "support")).stdout.strip() == "removed support"
    assert ok(invoke("apps", "list")).stdout.strip() == "(none)"
    failed(invoke("apps", "show", "support"), "support")


def test_the_key_can_come_from_stdin(invoke: Invoke, store_url: str) -> None:
    result = ok(invoke("apps", "add", "piped", "--key", "-", "--mode", "chat", input=KEY + "\n"))
    assert KEY not in result.output

    async def key(gw: Gateway) -> str:
        return gw.apps.api_key(await gw.apps.get("piped"))

    assert with_gateway(store_url, key) == KEY


def test_the_key_is_asked_for_when_omitted(invoke: Invoke, store_url: str) -> None:
    result = ok(invoke("apps", "add", "asked", "--mode", "chat", input=KEY + "\n"))
    assert KEY not in result.output  # hidden input is not echoed

    async def key(gw: Gateway) -> str:
        return gw.apps.api_key(await gw.apps.get("asked"))

    assert with_gateway(store_url, key) == KEY


def test_the_key_can_come_from_the_environment(invoke: Invoke, store_url: str) -> None:
    ok(invoke("apps", "add", "fromenv", "--mode", "chat", extra_env={"DIFY_APP_KEY": KEY}))

    async def key(gw: Gateway) -> str:
        return gw.apps.api_key(await gw.apps.get("fromenv"))

    assert with_gateway(store_url, key) == KEY


def test_a_new_key_from_stdin_on_update(invoke: Invoke, store_url: str) -> None:
    add_app(invoke)
    other = "app-" + "N" * 40
    result = ok(invoke("apps", "update", "support", "--key", "-", "--mode", "chat", input=other + "\n"))
    assert other not in result.output

    async def key(gw: Gateway) -> str:
        return gw.apps.api_key(await gw.apps.get("support"))

    assert with_gateway(store_url, key) == other


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["apps", "add", "Bad Name", "--key", KEY, "--mode", "chat"], "name"),
        (["apps", "add", "ok", "--key", KEY, "--mode", "telepathy"], "mode"),
        (["apps", "add", "ok", "--key", KEY, "--mode", "chat", "--base-url", "ftp://x"], "base_url"),
        (["apps", "update", "missing", "--mode", "chat"], "missing"),
        (["apps", "update", "x", "--base-url", "nope"], "base_url"),
        (["apps", "remove", "missing"], "missing"),
        (["apps", "show", "missing"], "missing"),
    ],
)
def test_app_errors_are_clean(invoke: Invoke, args: list[str], fragment: str) -> None:
    stderr = failed(invoke(*args), fragment)
    assert KEY not in stderr


def test_a_new_base_url_needs_the_key_too(invoke: Invoke, store_url: str) -> None:
    add_app(invoke)
    stderr = failed(invoke("apps", "update", "support", "--base-url", "https://elsewhere.test/v1"), "--key")
    assert KEY not in stderr and "another host" in stderr
    other = "app-" + "N" * 40
    moved = ["apps", "update", "support", "--base-url", "https://elsewhere.test/v1", "--mode", "chat"]
    ok(invoke(*moved, "--key", "-", input=other + "\n"))

    async def app(gw: Gateway) -> tuple[str, str]:
        record = await gw.apps.get("support")
        return record.base_url, gw.apps.api_key(record)

    assert with_gateway(store_url, app) == ("https://elsewhere.test/v1", other)


def test_adding_an_app_twice_is_refused(invoke: Invoke) -> None:
    add_app(invoke)
    failed(invoke("apps", "add", "support", "--key", KEY, "--mode", "chat"), "already exists")


def test_an_app_in_use_cannot_be_removed(invoke: Invoke) -> None:
    add_app(invoke)
    endpoint = create_endpoint(invoke, "--app", "support")
    failed(invoke("apps", "remove", "support"), endpoint["id"])
    ok(invoke("endpoints", "delete", endpoint["id"], "--yes"))
    ok(invoke("apps", "remove", "support"))


@respx.mock
def test_apps_check_and_mode_detection(invoke: Invoke) -> None:
    route = respx.get(f"{DIFY}/info").mock(return_value=httpx.Response(200, json={"name": "Bot", "mode": "workflow"}))
    respx.get(f"{DIFY}/parameters").mock(return_value=httpx.Response(200, json={"user_input_form": []}))
    added = as_json(invoke("apps", "add", "detected", "--base-url", DIFY, "--key", KEY, "--json"))
    assert added["mode"] == "workflow"
    assert route.calls.last.request.headers["authorization"] == f"Bearer {KEY}"

    checked = ok(invoke("apps", "check", "detected"))
    assert "ok: detected answers as 'Bot' (mode workflow)" in checked.stdout
    info = as_json(invoke("apps", "check", "detected", "--json"))
    assert (info["name"], info["mode"]) == ("Bot", "workflow")

    route.mock(return_value=httpx.Response(401, json={"code": "unauthorized", "message": KEY}))
    assert KEY not in failed(invoke("apps", "check", "detected"))
    assert KEY not in failed(invoke("apps", "add", "rejected", "--base-url", DIFY, "--key", KEY))
    failed(invoke("apps", "show", "rejected"), "rejected")  # nothing was registered


# -- endpoints --------------------------------------------------------------------------------------


def test_endpoint_lifecycle(invoke: Invoke, store_url: str) -> None:
    add_app(invoke)
    created = create_endpoint(
        invoke, "--app", "support", "--set", "greeting=hi", "--set", f"token={ENDPOINT_TOKEN}", "--name", "demo"
    )
    endpoint_id = created["id"]
    assert created["url"].startswith("http://127.0.0.1:8000/e/")
    assert created["settings"] == {"greeting": "hi", "token": MASK}
    assert created["apps"] == ["support"]
    assert created["name"] == "demo"

    human = ok(invoke("endpoints", "create", "--plugin", "echo"))
    assert human.stdout.startswith("http://127.0.0.1:8000/e/")
    assert "plugin echo" in human.stdout

    listed = ok(invoke("endpoints", "list"))
    assert endpoint_id in listed.stdout
    assert created["url"] in listed.stdout
    assert len(as_json(invoke("endpoints", "list", "--json"))) == 2

    shown = ok(invoke("endpoints", "show", endpoint_id))
    assert f"url: {created['url']}" in shown.stdout
    assert f"settings.token: {MASK}" in shown.stdout
    assert "settings.greeting: hi" in shown.stdout

    # Merged: the secret stays when not given.
    updated = as_json(
        invoke("endpoints", "update", endpoint_id, "--set", "greeting=bye", "--rate-limit", "7", "--json")
    )
    assert updated["settings"] == {"greeting": "bye", "token": MASK}
    assert updated["rate_limit_per_minute"] == 7

    async def token(gw: Gateway) -> str | None:
        record = await gw.endpoints.get(endpoint_id)
        value = gw.endpoints.settings(record, gw.registry.require("echo")).token  # type: ignore[attr-defined]
        return None if value is None else str(value.get_secret_value())

    assert with_gateway(store_url, token) == ENDPOINT_TOKEN
    unset = as_json(invoke("endpoints", "update", endpoint_id, "--unset", "token", "--json"))
    assert unset["settings"] == {"greeting": "bye", "token": None}
    assert with_gateway(store_url, token) is None

    assert ok(invoke("endpoints", "disable", endpoint_id)).stdout.strip() == f"{endpoint_id} disabled"
    assert as_json(invoke("endpoints", "show", endpoint_id, "--json"))["enabled"] is False
    assert ok(invoke("endpoints", "enable", endpoint_id)).stdout.strip() == f"{endpoint_id} enabled"
    assert as_json(invoke("endpoints", "show", endpoint_id, "--json"))["enabled"] is True

    graced = as_json(invoke("endpoints", "rotate", endpoint_id, "--json"))
    assert graced["url"] != created["url"]
    assert len(graced["previous_urls_expire_at"]) == 1
    rotated = ok(invoke("endpoints", "rotate", endpoint_id, "--grace", "0"))
    new_url, note = rotated.stdout.strip().splitlines()
    assert note == "The old URL stopped working at once."
    assert new_url.startswith("http://127.0.0.1:8000/e/")
    assert new_url not in (created["url"], graced["url"])
    shown_after = as_json(invoke("endpoints", "show", endpoint_id, "--json"))
    assert shown_after["url"] == new_url
    assert shown_after["previous_urls_expire_at"] == []  # grace 0 retired both older URLs

    async def resolves(gw: Gateway) -> list[bool]:
        urls = (created["url"], graced["url"], new_url)
        return [await gw.endpoints.resolve(u.rsplit("/", 1)[1]) is not None for u in urls]

    assert with_gateway(store_url, resolves) == [False, False, True]

    assert ok(invoke("endpoints", "delete", endpoint_id, "--yes")).stdout.strip() == f"deleted {endpoint_id}"
    failed(invoke("endpoints", "show", endpoint_id), endpoint_id)
    assert endpoint_id not in ok(invoke("endpoints", "list")).stdout
    assert ENDPOINT_TOKEN not in json.dumps(created)


def test_delete_asks_first(invoke: Invoke) -> None:
    endpoint = create_endpoint(invoke)
    failed(invoke("endpoints", "delete", endpoint["id"], input="n\n"), "not deleted")
    ok(invoke("endpoints", "show", endpoint["id"]))
    ok(invoke("endpoints", "delete", endpoint["id"], input="y\n"))
    failed(invoke("endpoints", "show", endpoint["id"]))


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["endpoints", "create", "--plugin", "echo", "--app", "nope"], "no app named 'nope'"),
        (["endpoints", "create", "--plugin", "nope"], "no plugin named 'nope'"),
        (["endpoints", "create", "--plugin", "echo", "--set", "greeting"], "--set takes key=value"),
        (["endpoints", "create", "--plugin", "echo", "--set", "=hi"], "--set takes key=value"),
        (["endpoints", "create", "--plugin", "echo", "--set", "greeting=" + "g" * 300], "greeting"),
        (["endpoints", "update", "ep_missing", "--set", "greeting=x"], "ep_missing"),
        (["endpoints", "update", "ep_missing", "--set", "oops"], "--set takes key=value"),
        (["endpoints", "show", "ep_missing"], "ep_missing"),
        (["endpoints", "disable", "ep_missing"], "ep_missing"),
        (["endpoints", "enable", "ep_missing"], "ep_missing"),
        (["endpoints", "rotate", "ep_missing"], "ep_missing"),
        (["endpoints", "delete", "ep_missing", "--yes"], "ep_missing"),
        (["endpoints", "requests", "ep_missing"], "ep_missing"),
    ],
)
def test_endpoint_errors_are_clean(invoke: Invoke, args: list[str], fragment: str) -> None:
    stderr = failed(invoke(*args), fragment)
    assert "g" * 50 not in stderr  # a rejected value is never echoed


def test_requests_shows_the_log(invoke: Invoke, store_url: str) -> None:
    endpoint = create_endpoint(invoke)
    assert ok(invoke("endpoints", "requests", endpoint["id"])).stdout.strip() == "(none)"

    async def seed(gw: Gateway) -> None:
        for i, (status, verdict) in enumerate([(200, "ok"), (401, "failed")]):
            entry = RequestLogEntry(1_700_000_000.0 + i, f"req{i}", "POST", "/hook", status, 1.5, verdict, "10.0.0.1")
            gw.requests.record(endpoint["id"], entry)
        await gw.requests.flush()

    with_gateway(store_url, seed)
    table = ok(invoke("endpoints", "requests", endpoint["id"])).stdout
    lines = table.strip().splitlines()
    assert lines[0].split() == ["TIME", "METHOD", "PATH", "STATUS", "LATENCY", "VERIFIED"]
    assert lines[1].startswith("2023-11-14T22:13:21Z ")  # newest first, ISO 8601
    assert "401" in lines[1] and "failed" in lines[1]
    assert "200" in lines[2] and "ok" in lines[2]
    rows = as_json(invoke("endpoints", "requests", endpoint["id"], "--json", "--limit", "1"))
    assert [r["request_id"] for r in rows] == ["req1"]
    assert rows[0]["time"] == "2023-11-14T22:13:21Z"


# -- plugins and jobs -------------------------------------------------------------------------------


def test_plugins_list(invoke: Invoke) -> None:
    table = ok(invoke("plugins", "list")).stdout
    header = ["NAME", "ORIGIN", "VERSION", "IDENTITY", "SIGNATURE", "PERMISSIONS", "RUNTIME"]
    assert table.splitlines()[0].split() == header
    assert any(line.startswith("echo ") and " built-in " in line for line in table.splitlines())
    listing = as_json(invoke("plugins", "list", "--json"))
    plugins = {p["name"]: p for p in listing["plugins"]}
    assert plugins["echo"]["secret_settings"] == ["token"]
    assert plugins["echo"]["origin"] == "built-in" and listing["dify_plugins"] == []


def test_jobs_list_and_replay(invoke: Invoke, store_url: str) -> None:
    assert ok(invoke("jobs", "list")).stdout.strip() == "(none)"
    endpoint = create_endpoint(invoke)

    async def dead_job(gw: Gateway) -> None:
        payload = {"handler": "store", "data": {"name": "n", "value": "payload-private"}}
        await gw.store.job_enqueue(Job(id="job_1", kind="plugin", payload=payload, endpoint_id=endpoint["id"]))
        assert await gw.store.job_claim("test", gw.clock.time(), 30.0, job_id="job_1") is not None
        assert await gw.store.job_dead("job_1", "test", "it broke")

    with_gateway(store_url, dead_job)
    table = ok(invoke("jobs", "list", "--state", "dead")).stdout
    assert "job_1" in table
    assert "it broke" in table
    jobs = as_json(invoke("jobs", "list", "--json"))
    assert [(j["id"], j["state"], j["handler"]) for j in jobs] == [("job_1", "dead", "store")]
    assert "payload-private" not in json.dumps(jobs)
    assert as_json(invoke("jobs", "list", "--state", "queued", "--json")) == []

    assert ok(invoke("jobs", "replay", "job_1")).stdout.strip() == "job_1 queued again"
    assert [j["id"] for j in as_json(invoke("jobs", "list", "--state", "queued", "--json"))] == ["job_1"]
    failed(invoke("jobs", "replay", "job_1"), "not a dead job")
    failed(invoke("jobs", "replay", "job_missing"), "not a dead job")


def test_jobs_list_refuses_an_unknown_state(invoke: Invoke) -> None:
    result = invoke("jobs", "list", "--state", "bogus")
    assert result.exit_code == 2  # click's usage error
    assert "bogus" in result.stderr


# -- first use ----------------------------------------------------------------------------------------

ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


def test_per_endpoint_options_are_set_from_the_cli(invoke: Invoke) -> None:
    created = create_endpoint(invoke, "--rate-limit-per-minute", "5", "--max-body-bytes", "2048", "--log-bodies")
    assert (created["rate_limit_per_minute"], created["max_body_bytes"], created["log_bodies"]) == (5, 2048, True)

    endpoint_id = created["id"]
    updated = as_json(
        invoke("endpoints", "update", endpoint_id, "--no-log-bodies", "--max-body-bytes", "4096", "--json")
    )
    assert (updated["rate_limit_per_minute"], updated["max_body_bytes"], updated["log_bodies"]) == (5, 4096, False)
    reset = as_json(
        invoke("endpoints", "update", endpoint_id, "--rate-limit", "default", "--max-body-bytes", "default", "--json")
    )
    assert (reset["rate_limit_per_minute"], reset["max_body_bytes"], reset["log_bodies"]) == (None, None, False)
    shown = ok(invoke("endpoints", "show", endpoint_id)).stdout
    assert "max_body_bytes: None" in shown

    for args in (
        ["--max-body-bytes", "0"],
        ["--max-body-bytes", str(64 * 1024 * 1024 + 1)],
        ["--rate-limit", "-1"],
        ["--rate-limit", "lots"],
    ):
        result = invoke("endpoints", "update", endpoint_id, *args)
        assert result.exit_code == 2, result.output  # click's usage error, naming the option
        assert args[0] in result.stderr


def test_cli_times_are_iso_8601(invoke: Invoke, store_url: str) -> None:
    add_app(invoke)
    assert ISO.fullmatch(as_json(invoke("apps", "show", "support", "--json"))["created_at"])
    endpoint = create_endpoint(invoke)
    shown = as_json(invoke("endpoints", "show", endpoint["id"], "--json"))
    assert ISO.fullmatch(shown["created_at"]) and ISO.fullmatch(shown["updated_at"])
    assert f"created_at: {shown['created_at']}" in ok(invoke("endpoints", "show", endpoint["id"])).stdout
    assert ISO.fullmatch(endpoint["created_at"])


def test_rotate_says_until_when_the_old_url_works(invoke: Invoke) -> None:
    endpoint = create_endpoint(invoke)
    before = datetime.datetime.now(datetime.UTC)
    rotated = ok(invoke("endpoints", "rotate", endpoint["id"], "--grace", "3600")).stdout.strip().splitlines()
    assert rotated[0].startswith("http://127.0.0.1:8000/e/") and rotated[0] != endpoint["url"]
    match = re.fullmatch(r"The old URL keeps working until (\S+) \(UTC\), then answers 404\.", rotated[1])
    assert match, rotated
    until = datetime.datetime.fromisoformat(match.group(1).replace("Z", "+00:00"))
    assert datetime.timedelta(minutes=59) < until - before <= datetime.timedelta(hours=1, seconds=1)
    graced = as_json(invoke("endpoints", "rotate", endpoint["id"], "--json"))
    assert all(ISO.fullmatch(t) for t in graced["previous_urls_expire_at"])


def test_jobs_show_tells_everything_but_the_payload(invoke: Invoke, store_url: str) -> None:
    endpoint = create_endpoint(invoke)

    async def dead_job(gw: Gateway) -> None:
        payload = {"handler": "store", "data": {"response_url": "https://hooks.slack.com/secret-path"}}
        job = Job(id="job_7", kind="plugin", payload=payload, endpoint_id=endpoint["id"], key="Ev123")
        await gw.store.job_enqueue(job)
        assert await gw.store.job_claim("test", gw.clock.time(), 30.0, job_id="job_7") is not None
        assert await gw.store.job_dead("job_7", "test", "Slack answered HTTP 502 (5 tries)")

    with_gateway(store_url, dead_job)
    shown = as_json(invoke("jobs", "show", "job_7", "--json"))
    assert shown["id"] == "job_7"
    assert (shown["state"], shown["kind"], shown["handler"], shown["key"]) == ("dead", "plugin", "store", "Ev123")
    assert (shown["endpoint_id"], shown["attempts"]) == (endpoint["id"], 1)
    assert shown["last_error"] == "Slack answered HTTP 502 (5 tries)"
    assert ISO.fullmatch(shown["created_at"]) and ISO.fullmatch(shown["updated_at"])
    human = ok(invoke("jobs", "show", "job_7"))
    assert "state: dead" in human.stdout and "last_error: Slack answered HTTP 502 (5 tries)" in human.stdout
    for output in (json.dumps(shown), human.output):
        assert "secret-path" not in output and "payload" not in output
    assert ISO.fullmatch(as_json(invoke("jobs", "list", "--json"))[0]["created_at"])
    failed(invoke("jobs", "show", "job_missing"), "job_missing")


def test_an_unreachable_app_names_the_url_and_the_simulator(invoke: Invoke) -> None:
    with refused_port() as port:
        base = f"http://127.0.0.1:{port}/v1"
        message = failed(invoke("apps", "add", "support", "--base-url", base, "--key", KEY), f"GET {base}/info")
        assert "dify-gateway simulate-dify" in message
        assert KEY not in message
        ok(invoke("apps", "add", "support", "--base-url", base, "--key", KEY, "--mode", "chat"))
        message = failed(invoke("apps", "check", "support"), f"GET {base}/info")
        assert "simulate-dify" in message
