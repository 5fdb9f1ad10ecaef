"""`dify-gateway demo` and `simulate-dify`: busy ports are a one-line error naming the flag; a demo
run again (other ports) answers through the simulator it started."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from gateway.cli.main import cli
from tests.support.gateway import listening_socket
from tests.support.processes import ROOT, stop


@pytest.fixture
def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}


@pytest.fixture
def busy() -> Iterator[int]:
    with listening_socket() as sock:
        yield sock.getsockname()[1]


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["demo", "--port", "{busy}", "--simulator-port", "0"], "--port"),
        (["demo", "--port", "0", "--simulator-port", "{busy}"], "--simulator-port"),
        (["simulate-dify", "--port", "{busy}"], "--port"),
    ],
)
def test_a_busy_port_is_one_clear_line_naming_the_flag(
    busy: int, args: list[str], flag: str, tmp_path: Path, clean_env: dict[str, str]
) -> None:
    argv = [a.format(busy=busy) for a in args] + (["--dir", str(tmp_path / "demo")] if args[0] == "demo" else [])
    result = CliRunner().invoke(cli, argv, env={k: None for k in os.environ if k.startswith("GATEWAY_")})
    assert result.exit_code == 1
    assert result.stdout == ""  # no commands printed that would not work
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"error: port {busy} is busy (is a gateway or another demo running there?): choose another with {flag} PORT"
    ]


def _start_demo(workdir: Path, env: dict[str, str]) -> tuple[subprocess.Popen[str], list[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "demo", "--port", "0", "--simulator-port", "0", "--dir", str(workdir)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    while not lines or lines[-1] != "Press Ctrl+C to stop.":
        line = proc.stdout.readline()  # "" once the demo exited
        assert line, proc.stderr.read() if proc.stderr else ""
        lines.append(line.rstrip("\n"))
    return proc, lines


def _stop(proc: subprocess.Popen[str]) -> None:
    stop(proc)
    if proc.stdout:
        proc.stdout.close()


def _run_printed(line: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # The printed command, as a shell would run it: VAR=value ... program args
    return subprocess.run(line.strip(), shell=True, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.live
def test_a_demo_run_again_uses_the_simulator_it_started(tmp_path: Path, clean_env: dict[str, str]) -> None:
    workdir = tmp_path / "demo"
    first, _ = _start_demo(workdir, clean_env)
    _stop(first)
    second, lines = _start_demo(workdir, clean_env)
    try:
        call = next(line for line in lines if "webhook call" in line and "--stream" not in line)
        result = _run_printed(call, clean_env)
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.startswith("You said: Hello there")
        streamed = _run_printed(next(line for line in lines if "--stream" in line), clean_env)
        assert streamed.returncode == 0, streamed.stdout + streamed.stderr
        assert shlex.split(call)[0].startswith("GATEWAY_STORE=")
    finally:
        _stop(second)
