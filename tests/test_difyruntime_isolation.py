"""What a Dify plugin process can learn of the gateway: nothing from its environment (built from
nothing) and nothing from /proc/<gateway>/environ (the gateway is non-dumpable once a plugin runs),
although the plugin runs as the gateway's user."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import anyio
import pytest

from gateway.clock import SystemClock
from gateway.difyplugins.runtime.dumpable import dumpable
from gateway.difyplugins.runtime.process import PluginProcess, ProcessPolicy
from gateway.settings import outbound_environment
from tests.support.difydebug import eventually

pytestmark = pytest.mark.anyio
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl and /proc are Linux's")

# Run as a separate "gateway": it drops root (root reads every /proc file anyway), becomes an
# ordinary dumpable process, lets a child of its own uid read its environ, then makes itself
# non-dumpable as the runtime does and lets another child try again.
_GATEWAY = textwrap.dedent(
    """
    import ctypes, json, os, subprocess, sys
    from gateway.difyplugins.runtime.dumpable import make_non_dumpable

    if os.getuid() == 0:
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)
    ctypes.CDLL(None, use_errno=True).prctl(4, 1, 0, 0, 0)  # dumpable, as any process starts
    read = ["/bin/cat", f"/proc/{os.getpid()}/environ"]
    before = subprocess.run(read, capture_output=True)
    protected = make_non_dumpable()
    after = subprocess.run(read, capture_output=True)
    print(json.dumps({
        "uid": os.getuid(),
        "before": before.returncode, "seen": b"GATEWAY_SECRET_KEY=" in before.stdout,
        "protected": protected,
        "after": after.returncode, "leaked": b"GATEWAY_SECRET_KEY=" in after.stdout,
        "error": after.stderr.decode(errors="replace"),
    }))
    """
)


@linux_only
def test_a_process_of_the_same_user_cannot_read_the_environment_of_a_non_dumpable_gateway() -> None:
    env = {**os.environ, "GATEWAY_SECRET_KEY": "s" * 40, "PYTHONPATH": str(Path(__file__).parents[1])}
    done = subprocess.run([sys.executable, "-c", _GATEWAY], env=env, capture_output=True, text=True, check=True)
    result = json.loads(done.stdout)
    assert result["uid"] != 0
    assert result["before"] == 0 and result["seen"]  # the check works: readable while dumpable
    assert result["protected"]
    assert result["after"] != 0 and not result["leaked"] and "Permission denied" in result["error"]


async def test_a_plugin_starts_from_an_empty_environment_and_the_gateway_turns_non_dumpable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_ADMIN_TOKEN", "admin-" + "x" * 40)
    monkeypatch.setenv("GATEWAY_SECRET_KEY", "k" * 40)
    monkeypatch.setenv("DATABASE_PASSWORD", "hunter2")  # the gateway's neighbours' secrets too
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    seen = tmp_path / "environ.json"
    (tmp_path / "main.py").write_text(
        f"import json, os, time\nopen({str(seen)!r}, 'w').write(json.dumps(dict(os.environ)))\ntime.sleep(600)\n"
    )
    process = PluginProcess(
        name="tests/environ",
        directory=tmp_path,
        python=Path(sys.executable),
        clock=SystemClock(),
        policy=ProcessPolicy(restart_base=30.0, stop_grace=1.0),
        env=outbound_environment(),  # what the runtime passes
    )
    try:
        await process.connection()
        await eventually(lambda: _written(seen), "the plugin wrote its environment")
    finally:
        await process.aclose()
    environment = json.loads(seen.read_text())
    assert not [name for name in environment if name.upper().startswith("GATEWAY_")]
    assert "DATABASE_PASSWORD" not in environment and "hunter2" not in json.dumps(environment)
    assert environment["HTTPS_PROXY"] == "http://proxy.internal:3128"  # the plugin still reaches out
    assert environment["HOME"] == str(tmp_path)
    if sys.platform.startswith("linux"):
        assert dumpable() is False


async def _written(path: Path) -> bool:
    target = anyio.Path(path)
    return await target.exists() and (await target.read_text()).endswith("}")
