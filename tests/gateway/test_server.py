"""The gateway's own server process (`gateway.http.server`): its uvicorn config and settled heap.

The heap is process-wide, so it is looked at in a child process, never in the test runner's.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from gateway.http.server import GC_THRESHOLDS, server_config
from gateway.settings import Settings
from tests.support.processes import ROOT

# A lifespan-only app under GatewayServer on a port-0 socket: it makes a marker list during its
# startup, and reports where the collector keeps it during startup and once the server has started.
CHILD = textwrap.dedent(
    """
    import asyncio, gc, json, socket

    from gateway.http.server import GatewayServer, server_config
    from gateway.settings import Settings

    seen = {}

    def scanned(obj):  # in one of the generations the collector scans (not frozen)
        return any(o is obj for o in gc.get_objects())

    async def app(scope, receive, send):
        assert scope["type"] == "lifespan"
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                seen["marker"] = [["made at startup"]]  # a container the collector tracks
                seen["scanned during startup"] = scanned(seen["marker"])
                seen["threshold during startup"] = gc.get_threshold()
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def main():
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        server = GatewayServer(server_config(app, Settings(), log_level="warning"))
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            await asyncio.sleep(0.01)
        report = {
            "scanned during startup": seen["scanned during startup"],
            "threshold during startup": seen["threshold during startup"],
            "scanned after startup": scanned(seen["marker"]),
            "threshold after startup": gc.get_threshold(),
            "frozen": gc.get_freeze_count(),
        }
        server.should_exit = True
        await task
        print(json.dumps(report))

    asyncio.run(main())
    """
)


def test_the_startup_heap_is_frozen_and_the_thresholds_raised_once_the_server_has_started() -> None:
    done = subprocess.run([sys.executable, "-c", CHILD], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["scanned during startup"] is True
    assert report["threshold during startup"] == [700, 10, 10]  # Python's defaults until then
    assert report["scanned after startup"] is False  # the marker is frozen: never scanned again
    assert report["frozen"] > 10_000
    assert report["threshold after startup"] == list(GC_THRESHOLDS)


def test_forwarded_headers_are_believed_only_from_the_configured_proxies() -> None:
    async def app(scope: object, receive: object, send: object) -> None:  # never called
        raise AssertionError

    default = server_config(app, Settings())
    assert default.proxy_headers is False
    behind = server_config(app, Settings(trusted_proxies=("10.0.0.1",)))
    assert behind.proxy_headers is True and behind.forwarded_allow_ips == ["10.0.0.1"]
    assert default.access_log is False  # the gateway's own access log, without URL tokens
