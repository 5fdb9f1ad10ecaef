"""`dify-gateway export | apply | snapshot ...` from the command line."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from gateway.cli.main import cli

Invoke = Callable[..., Result]


@pytest.fixture
def run(tmp_path: Path) -> Invoke:
    cleared: dict[str, str | None] = {name: None for name in os.environ if name.startswith(("GATEWAY_", "APP_", "EP_"))}
    base = {**cleared, "GATEWAY_STORE": f"sqlite:///{tmp_path / 'gw.db'}"}

    def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
        result = CliRunner().invoke(cli, list(args), env={**base, **(env or {})})
        assert "Traceback" not in result.output
        return result

    return invoke


def test_export_apply_and_snapshots_from_the_command_line(run: Invoke, tmp_path: Path) -> None:
    assert run("apps", "add", "support", "--mode", "chat", "--key", "app-one").exit_code == 0
    created = run("endpoints", "create", "--plugin", "echo", "--set", "token=tok-1", "--json")
    assert created.exit_code == 0, created.output
    exported = run("export")
    assert exported.exit_code == 0 and "app-one" not in exported.stdout and "tok-1" not in exported.stdout
    path = tmp_path / "gateway.yaml"
    path.write_text(exported.stdout.replace("greeting: echo", "greeting: hello"))

    missing = run("apply", str(path))
    assert missing.exit_code == 1 and "${APP_SUPPORT_KEY} is not set" in missing.stderr
    env = {"APP_SUPPORT_KEY": "app-one"}
    endpoint_id = next(line.split()[-1] for line in exported.stdout.splitlines() if "id: ep_" in line)
    env[f"{endpoint_id.upper()}_TOKEN"] = "tok-1"
    dry = run("apply", str(path), "--dry-run", env=env)
    assert dry.exit_code == 0 and dry.stdout.strip() == f"would ~ update endpoint {endpoint_id} (settings.greeting)"
    assert run("snapshot", "save", "v1").exit_code == 0
    applied = run("apply", str(path), env=env)
    assert applied.stdout.strip() == f"~ update endpoint {endpoint_id} (settings.greeting)"
    again = run("apply", str(path), env=env)
    assert again.stdout.strip() == "no changes: the gateway already matches"

    diff = run("snapshot", "diff", "v1")
    assert diff.stdout.strip() == f"~ update endpoint {endpoint_id} (settings.greeting)"
    assert "v1" in run("snapshot", "list").stdout
    assert run("snapshot", "restore", "v1").exit_code == 0
    assert "greeting: echo" in run("export").stdout

    path.write_text("version: 1\napps:\n  - name: x\n    mode: nope\n")
    bad = run("apply", str(path))
    assert bad.exit_code == 1 and "line 4: apps.0.mode" in bad.stderr
