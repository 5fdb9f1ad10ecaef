"""Benchmark a Dify plugin (the real `dify_plugin` SDK, in its own process) behind the gateway,
beside the gateway's own plugins in the same run.

    python bench/bench_difyplugin.py [--duration 10] [--concurrency 50] [--rounds 3] [--streams 50]

1. Requests/s and p99 through a Dify-plugin echo endpoint vs the built-in `echo` plugin.
2. The plugin process's resident memory at rest (after the load).
3. Reverse calls: time to first token of a streamed app answer asked by a Dify plugin
   (`self.session.app.chat.invoke(..., response_mode="streaming")`) vs the same answer through the
   `webhook` plugin's SSE relay, and vs the simulator called directly.
Needs a Python >= 3.12 for the plugin (GATEWAY_PLUGIN_PYTHON, or found). Servers run in their own processes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
from pydantic import SecretStr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_webhook import first_token, ttft  # noqa: E402
from bench.loadgen import percentile, ratio_line, rounds_summary, run_load, ttft_lines  # noqa: E402
from bench.servers import Scratch, free_port, gateway_env, wait_up  # noqa: E402
from gateway.difyplugins.package import pack_directory  # noqa: E402
from gateway.host.runtime import open_gateway  # noqa: E402
from gateway.records.apps import AppIn  # noqa: E402
from gateway.security.signatures import parse_webhook_secret, standard_webhook_headers  # noqa: E402
from gateway.settings import Settings  # noqa: E402
from tests.support.difyplugins import (  # noqa: E402
    BOT_ENDPOINTS,
    ECHO_ENDPOINTS,
    Endpoint,
    Permission,
    shared_venv_dir,
    write_plugin,
)

BENCH_ECHO = Endpoint(
    "bench",
    "/bench",
    "POST",
    """
    return Response(r.get_data(), status=200, content_type="application/json")
    """,
)
APP_SELECTOR = [{"name": "app", "type": "app-selector", "required": True, "label": {"en_US": "App"}}]


def plugin_children(parent: int) -> list[int]:
    """Pids of the `python -m main` processes the gateway started."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(fields[1]) == parent and b"main" in cmdline and b"-m" in cmdline:
            found.append(int(stat.parent.name))
    return found


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def setup(settings: Settings, workdir: Path, sim_port: int) -> tuple[str, str, str, str, bytes]:
    """Install the plugins and mint the endpoints: (builtin echo, dify echo, dify bot, webhook URL, its key)."""
    echo_dir = write_plugin(workdir / "src", "echo", (*ECHO_ENDPOINTS, BENCH_ECHO))
    bot_dir = write_plugin(
        workdir / "src", "bot", BOT_ENDPOINTS, permission=Permission(app=True, storage=4096), settings=APP_SELECTOR
    )
    gateway = await open_gateway(settings)
    try:
        await gateway.dify_plugins.install(pack_directory(echo_dir), allow_unsigned=True)
        await gateway.dify_plugins.install(pack_directory(bot_dir), allow_unsigned=True)
        await gateway.apps.add(
            AppIn(
                name="sim", base_url=f"http://127.0.0.1:{sim_port}/v1", api_key=SecretStr("app-simulator"), mode="chat"
            )
        )
        _, builtin = await gateway.endpoints.create("echo", [], {})
        _, dify = await gateway.endpoints.create("tests/echo", [], {})
        _, bot = await gateway.endpoints.create("tests/bot", ["sim"], {})
        _, hook, shown = await gateway.endpoints.create_with_secrets("webhook", ["sim"], {})
        return builtin, dify, bot, hook, parse_webhook_secret(shown["secret"])
    finally:
        await gateway.aclose()


async def first_chunk(session: aiohttp.ClientSession, url: str, body: bytes) -> float:
    started = time.perf_counter()
    async with session.post(url, data=body, headers={"content-type": "application/json"}) as response:
        chunk = await response.content.readany()
        if response.status != 200 or not chunk:
            raise RuntimeError(f"no answer from the Dify plugin: HTTP {response.status}")
        elapsed = time.perf_counter() - started
        await response.read()
        return elapsed


async def main_async(args: argparse.Namespace) -> None:
    with Scratch("bench-difyplugin-") as scratch:
        sim_port, port = free_port(), free_port()
        simulator = subprocess.Popen(
            [sys.executable, "-m", "gateway", "simulate-dify", "--port", str(sim_port)]
            + ["--first-token-latency", "0.05", "--tokens-per-second", "0", "--answer", "The quick brown fox."],
            stdout=subprocess.DEVNULL,
        )
        scratch.keep(simulator)
        env = gateway_env(
            f"sqlite:///{scratch.dir / 'gw.db'}",
            port,
            GATEWAY_PLUGIN_DIR=str(scratch.dir / "plugins"),
            GATEWAY_PLUGIN_VENV_DIR=str(shared_venv_dir()),
            GATEWAY_WORKERS="100",
        )
        builtin, dify, bot, hook, key = await setup(Settings.from_env(env), scratch.dir, sim_port)
        server = subprocess.Popen([sys.executable, "-m", "gateway", "serve"], env=env, stdout=subprocess.DEVNULL)
        scratch.keep(server)
        wait_up(f"http://127.0.0.1:{sim_port}/_sim/stats", simulator)
        wait_up(f"http://127.0.0.1:{port}/healthz", server)

        load = {"concurrency": args.concurrency, "duration": args.duration}
        await run_load("warm-up", dify + "/bench", concurrency=4, duration=1.0)
        pairs = []
        for i in range(args.rounds):  # alternating, so a change in the machine's load hits both alike
            own = await run_load("built-in echo", builtin + "/bench", **load)
            plugin = await run_load("Dify-plugin echo", dify + "/bench", **load)
            pairs.append((plugin, own))
            print(f"\nround {i + 1}: {args.concurrency} concurrent connections, {args.duration:.0f} s each, loopback")
            print(own.row())
            print(plugin.row())
            print(ratio_line(plugin, own), flush=True)
        print()
        print(*rounds_summary(pairs), sep="\n")

        await asyncio.sleep(2.0)  # at rest
        for pid in plugin_children(server.pid):
            print(
                f"\nDify plugin process {pid} at rest: RSS {rss_mib(pid):.1f} MiB "
                f"(the gateway's: {rss_mib(server.pid):.1f} MiB)"
            )

        direct_body = json.dumps({"query": "hi", "user": "bench", "inputs": {}, "response_mode": "streaming"}).encode()
        direct_headers = {"authorization": "Bearer app-simulator", "content-type": "application/json"}

        async def direct(session: aiohttp.ClientSession) -> float:
            url = f"http://127.0.0.1:{sim_port}/v1/chat-messages"
            return await first_token(session, url, direct_body, direct_headers, b'data: {"event": "message"')

        async def through_webhook(session: aiohttp.ClientSession) -> float:
            body = json.dumps({"query": "hi", "user": "bench", "stream": True}).encode()
            headers = standard_webhook_headers([key], "msg_" + secrets.token_hex(8), int(time.time()), body)
            return await first_token(
                session, hook, body, {**headers, "content-type": "application/json"}, b"event: delta"
            )

        async def through_plugin(session: aiohttp.ClientSession) -> float:
            return await first_chunk(session, bot + "/chat/stream", b'{"query": "hi"}')

        base = await ttft("direct", direct, args.streams, args.rounds)
        webhook = await ttft("webhook", through_webhook, args.streams, args.rounds)
        plugin_ttft = await ttft("dify plugin", through_plugin, args.streams, args.rounds)
        print(f"\nTime to first token of a streamed app answer, {args.streams} concurrent x {args.rounds} rounds (ms)")
        print("\n".join(ttft_lines("webhook", base, webhook)))
        print("\n".join(ttft_lines("Dify plugin", base, plugin_ttft)))
        w50, p50 = percentile(webhook, 0.5), percentile(plugin_ttft, 0.5)
        w99, p99 = percentile(webhook, 0.99), percentile(plugin_ttft, 0.99)
        print(f"  ratio Dify plugin / webhook: p50 {p50 / w50:.2f}x, p99 {p99 / w99:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--streams", type=int, default=50)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
