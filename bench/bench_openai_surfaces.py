"""Benchmark the openai plugin's newer surfaces against its chat completions, in the same run.

    python bench/bench_openai_surfaces.py [--duration 5] [--concurrency 20]

1. streaming time to first token: `POST /v1/responses` (`stream: true`, first
   `response.output_text.delta`) vs `POST /v1/chat/completions` (`stream: true`, first content
   chunk);
2. the cost of schema enforcement on an answer that is already valid: chat completions with a
   `json_schema` `response_format` (extract + validate, no re-ask; the JSON sent in one delta)
   vs the same request without it, not streamed.

The simulator answers valid JSON at once, with a high token rate, so what remains is overhead.
Simulator and gateway each run in their own process. Ratios are printed (no absolute targets).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_openai import make_endpoint  # noqa: E402
from bench.loadgen import percentile, ratio_line, run_load  # noqa: E402
from bench.servers import Scratch, free_port, gateway_env, wait_up  # noqa: E402
from gateway.settings import Settings  # noqa: E402

ANSWER = '{"name": "Ann", "age": 3, "city": "Lisbon", "tags": ["a", "b", "c"]}'
SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer"},
        "city": {"type": "string"},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["name", "age"],
}


async def main_async(args: argparse.Namespace) -> None:
    with Scratch("bench-openai-surfaces-") as scratch:
        sim_port, port = free_port(), free_port()
        sim_args = ["--port", str(sim_port), "--first-token-latency", "0", "--tokens-per-second", "2000"]
        simulator = subprocess.Popen(
            [sys.executable, "-m", "gateway", "simulate-dify", *sim_args, "--answer", ANSWER], stdout=subprocess.DEVNULL
        )
        scratch.keep(simulator)
        env = gateway_env(f"sqlite:///{scratch.dir / 'gw.db'}", port)
        url, key = await make_endpoint(Settings.from_env(env), sim_port)
        server = subprocess.Popen([sys.executable, "-m", "gateway", "serve"], env=env, stdout=subprocess.DEVNULL)
        scratch.keep(server)
        wait_up(f"http://127.0.0.1:{sim_port}/_sim/stats", simulator)
        wait_up(f"http://127.0.0.1:{port}/healthz", server)
        load = {"concurrency": args.concurrency, "duration": args.duration}
        headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
        messages = [{"role": "user", "content": "who?"}]

        def chat(stream: bool, schema: bool = False) -> bytes:
            body: dict[str, object] = {"model": "sim", "messages": messages, "stream": stream, "user": "bench"}
            if schema:
                body["response_format"] = {"type": "json_schema", "json_schema": {"name": "p", "schema": SCHEMA}}
            return json.dumps(body).encode()

        responses = json.dumps({"model": "sim", "input": "who?", "stream": True, "user": "bench"}).encode()
        chat_s = await run_load(
            "chat stream", f"{url}/v1/chat/completions", body=chat(True), headers=headers,
            first_marker=b'"content":"', **load,
        )  # fmt: skip
        resp_s = await run_load(
            "responses stream", f"{url}/v1/responses", body=responses, headers=headers,
            first_marker=b"response.output_text.delta", **load,
        )  # fmt: skip
        schema = await run_load(
            "chat json_schema", f"{url}/v1/chat/completions", body=chat(False, True), headers=headers, **load
        )
        plain = await run_load("chat plain", f"{url}/v1/chat/completions", body=chat(False), headers=headers, **load)
        print(f"\n{args.concurrency} concurrent connections, {args.duration:.0f} s each, loopback, 1 gateway process")
        print("streaming time to first token (ms)")
        for result in (chat_s, resp_s):
            p50, p99 = percentile(result.ttfts, 0.5), percentile(result.ttfts, 0.99)
            print(f"  {result.name:<18} p50 {p50:7.2f}   p99 {p99:7.2f}")
        c50, r50 = percentile(chat_s.ttfts, 0.5), percentile(resp_s.ttfts, 0.5)
        print(f"  ratio responses / chat: p50 {r50 / c50:.2f}x")
        print("  " + ratio_line(resp_s, chat_s))
        print("schema enforcement on a valid answer (non-streaming)")
        print("  " + plain.row())
        print("  " + schema.row())
        print("  " + ratio_line(schema, plain))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=20)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
