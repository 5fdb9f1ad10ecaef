"""Benchmark the openai endpoint against the Dify simulator called directly, in the same run.

    python bench/bench_openai.py [--duration 10] [--concurrency 50] [--tokens-per-second 2000]

Closed loop, 50 concurrent keep-alive connections over loopback, one after the other:

1. non-streaming: `POST /v1/chat-messages` (blocking) on the simulator vs `POST
   /v1/chat/completions` (`stream: false`) through the gateway (which streams from Dify and
   assembles the answer);
2. streaming: the simulator's SSE vs the gateway's `chat.completion.chunk` stream, read to the
   end; time to first token is stamped at the first content chunk of each (`event: message` /
   a chunk with non-empty `delta.content`).

Every request through the gateway is a fresh conversation (a new thread: key check, history
fingerprint, conversation lock and memory), the common first-turn cost. The simulator answers
at once (first-token latency 0) with a high token rate, so what remains is overhead. Simulator
and gateway each run in their own process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.loadgen import ratio_line, run_load, ttft_lines  # noqa: E402
from bench.profile import Profiler  # noqa: E402
from bench.servers import Scratch, free_port, gateway_env, start_simulator, wait_up  # noqa: E402
from gateway.host.runtime import open_gateway  # noqa: E402
from gateway.records.apps import AppIn  # noqa: E402
from gateway.settings import Settings  # noqa: E402

ANSWER = "The quick brown fox jumps over the lazy dog, twice: the quick brown fox jumps over the lazy dog."


async def make_endpoint(settings: Settings, sim_port: int) -> tuple[str, str]:
    gateway = await open_gateway(settings)
    try:
        app = AppIn(name="sim", base_url=f"http://127.0.0.1:{sim_port}/v1", api_key="app-simulator", mode="chat")  # type: ignore[arg-type]
        await gateway.apps.add(app)
        _, url, shown = await gateway.endpoints.create_with_secrets("openai", ["sim"], {})
        return url, shown["api_key"]
    finally:
        await gateway.aclose()


async def main_async(args: argparse.Namespace) -> None:
    with Scratch("bench-openai-") as scratch:
        sim_port, port = free_port(), free_port()
        simulator = start_simulator(
            sim_port,
            "--first-token-latency",
            "0",
            "--tokens-per-second",
            str(args.tokens_per_second),
            "--answer",
            ANSWER,
        )
        scratch.keep(simulator)
        env = gateway_env(f"sqlite:///{scratch.dir / 'gw.db'}", port)
        url, key = await make_endpoint(Settings.from_env(env), sim_port)
        server = subprocess.Popen([sys.executable, "-m", "gateway", "serve"], env=env, stdout=subprocess.DEVNULL)
        scratch.keep(server)
        wait_up(f"http://127.0.0.1:{sim_port}/_sim/stats", simulator)
        wait_up(f"http://127.0.0.1:{port}/healthz", server)
        spy = Profiler(server.pid, args.duration * 2 + 4, Path(args.profile)) if args.profile else None

        load = {"concurrency": args.concurrency, "duration": args.duration}
        sim_url = f"http://127.0.0.1:{sim_port}/v1/chat-messages"
        sim_headers = {"authorization": "Bearer app-simulator", "content-type": "application/json"}
        gw_url = f"{url}/v1/chat/completions"
        gw_headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}

        def sim_body(mode: str) -> bytes:
            return json.dumps({"query": "hi", "user": "bench", "inputs": {}, "response_mode": mode}).encode()

        def gw_body(stream: bool) -> bytes:
            messages = [{"role": "user", "content": "hi"}]
            return json.dumps({"model": "sim", "messages": messages, "stream": stream, "user": "bench"}).encode()

        # Check the gateway answers before measuring it.
        async with (
            aiohttp.ClientSession() as session,
            session.post(gw_url, data=gw_body(False), headers=gw_headers) as r,
        ):
            answer = await r.json()
            assert r.status == 200 and answer["choices"][0]["message"]["content"] == ANSWER, answer

        direct = await run_load("simulator blocking", sim_url, body=sim_body("blocking"), headers=sim_headers, **load)
        through = await run_load("openai stream:false", gw_url, body=gw_body(False), headers=gw_headers, **load)
        direct_s = await run_load(
            "simulator streaming",
            sim_url,
            body=sim_body("streaming"),
            headers=sim_headers,
            first_marker=b'"event": "message"',
            **load,
        )
        through_s = await run_load(
            "openai stream:true", gw_url, body=gw_body(True), headers=gw_headers, first_marker=b'"content":"', **load
        )
        if spy is not None:
            spy.wait()

        print(f"\n{args.concurrency} concurrent connections, {args.duration:.0f} s each, loopback, 1 gateway process")
        print("non-streaming")
        print("  " + direct.row())
        print("  " + through.row())
        print("  " + ratio_line(through, direct))
        print("streaming (whole answer)")
        print("  " + direct_s.row())
        print("  " + through_s.row())
        print("  " + ratio_line(through_s, direct_s))
        print("time to first token (ms)")
        print("\n".join(ttft_lines("openai", direct_s.ttfts, through_s.ttfts)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--tokens-per-second", type=float, default=2000.0)
    parser.add_argument("--profile", default="", help="py-spy the gateway into this file (raw format)")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
