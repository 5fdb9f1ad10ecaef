"""Benchmark: the gateway's OpenAI facade vs the LiteLLM proxy, requests/s and added time to first token.

    python bench/bench_litellm.py --install          # once: LiteLLM in its own venv, bench/.venv-litellm
    python bench/bench_litellm.py [--duration 10] [--concurrency 50] [--rounds 3]
                                  [--profile stacks.txt]   # py-spy the gateway under load in round 1
                                  [--litellm-venv DIR]     # a LiteLLM venv built elsewhere (--install)

Each side proxies an OpenAI-style chat completion to an upstream that answers at once (no first
token latency, no pacing) with the same answer cut into the same tokens:

- gateway: `dify-gateway serve` (one process) with an `openai` endpoint, upstream the Dify
  simulator (`simulate-dify --first-token-latency 0 --tokens-per-second 0`);
- LiteLLM: `litellm --num_workers 1` (its proxy server, one worker, a master key, no database), upstream
  a fake OpenAI server (its own process; `--serve fake-openai`) sending the simulator's tokens as
  `chat.completion.chunk`s.

Closed loop with `--concurrency` keep-alive connections: non-streaming and streaming requests/s
(streams read to their end), then at concurrency 1 the time to first content chunk, through each
proxy and straight from its upstream: what the proxy adds. Peak resident memory of both proxies
is reported too. Rounds alternate LiteLLM and gateway; median and min-max of the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.loadgen import Result, percentile, run_load, spread  # noqa: E402
from bench.profile import Profiler, load_with_cpu, memory_mib, top_self  # noqa: E402
from bench.servers import Scratch, free_port, gateway_env, start_simulator, wait_up  # noqa: E402

VENV = ROOT / "bench" / ".venv-litellm"
LITELLM = VENV / "bin" / "litellm"
ANSWER = "The quick brown fox jumps over the lazy dog, twice: the quick brown fox jumps over the lazy dog."
MODEL = "sim"
LITELLM_KEY = "sk-bench-" + "0" * 32
# The first content chunk (not a role chunk with empty content): compact JSON from both proxies,
# json.dumps's default spacing from the fake upstream.
FIRST = b'"content":"The'
FIRST_SPACED = b'"content": "The'


def install() -> None:
    """LiteLLM's proxy in a venv of its own (it pins its own versions of shared libraries)."""
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", "litellm[proxy]"], check=True)
    print(f"installed: {LITELLM}")


# -- the fake OpenAI upstream (this script re-runs itself with --serve fake-openai) ----------------


def serve_fake_openai(port: int) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response, StreamingResponse
    from starlette.routing import Route

    from gateway.simulator.script import tokenize

    tokens = tokenize(ANSWER)

    def chunk(n: int, delta: dict[str, str], finish: str | None) -> bytes:
        body = {
            "id": f"chatcmpl-{n}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": MODEL,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return b"data: " + json.dumps(body).encode() + b"\n\n"

    counter = iter(range(10**12))

    async def completions(request: Request) -> Response:
        body = await request.json()
        n = next(counter)
        if not body.get("stream"):
            return JSONResponse(
                {
                    "id": f"chatcmpl-{n}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": MODEL,
                    "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": ANSWER}, "finish_reason": "stop"}
                    ],
                    "usage": {"prompt_tokens": 1, "completion_tokens": len(tokens), "total_tokens": len(tokens) + 1},
                }
            )

        async def events() -> object:
            yield chunk(n, {"role": "assistant", "content": ""}, None)
            for token in tokens:
                yield chunk(n, {"content": token}, None)
            yield chunk(n, {}, "stop")
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")  # type: ignore[arg-type]

    async def health(request: Request) -> Response:
        return Response(b"ok")

    app = Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"]), Route("/", health)])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# -- helpers --------------------------------------------------------------------------------------


async def make_endpoint(env: dict[str, str], sim_port: int) -> tuple[str, str]:
    from gateway.host.runtime import open_gateway
    from gateway.records.apps import AppIn
    from gateway.settings import Settings

    gateway = await open_gateway(Settings.from_env(env))
    try:
        app = AppIn(name=MODEL, base_url=f"http://127.0.0.1:{sim_port}/v1", api_key="app-simulator", mode="chat")  # type: ignore[arg-type]
        await gateway.apps.add(app)
        _, url, shown = await gateway.endpoints.create_with_secrets("openai", [MODEL], {})
        return url, shown["api_key"]
    finally:
        await gateway.aclose()


def chat_body(stream: bool) -> bytes:
    return json.dumps(
        {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": stream, "user": "bench"}
    ).encode()


def measure(
    name: str, url: str, headers: dict[str, str], concurrency: int, duration: float, pid: int
) -> tuple[Result, Result, float, float]:
    """Non-streaming and streaming results, and the proxy's CPU time per request (s) for each."""
    load = {"headers": headers, "concurrency": concurrency, "duration": duration}
    plain, plain_cpu = load_with_cpu(pid, f"{name} stream:false", url, body=chat_body(False), **load)
    streamed, stream_cpu = load_with_cpu(
        pid, f"{name} stream:true", url, body=chat_body(True), first_marker=FIRST, **load
    )
    return plain, streamed, plain_cpu, stream_cpu


async def ttft(url: str, body: bytes, headers: dict[str, str], marker: bytes, duration: float) -> float:
    """Time to first token at concurrency 1, p50 in ms."""
    result = await run_load("ttft", url, body=body, headers=headers, first_marker=marker, concurrency=1,
                            duration=duration)  # fmt: skip
    return percentile(result.ttfts, 0.5)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--install", action="store_true", help="install LiteLLM into bench/.venv-litellm and exit")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", type=Path, help="py-spy the gateway under load; collapsed stacks to this file")
    parser.add_argument(
        "--litellm-venv", type=Path, default=VENV, help="the venv --install built (default: %(default)s)"
    )
    parser.add_argument("--serve", choices=["fake-openai"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.install:
        return install()
    if args.serve == "fake-openai":
        return serve_fake_openai(args.port)
    litellm_bin = args.litellm_venv / "bin" / "litellm"
    if not litellm_bin.exists():
        raise SystemExit(f"LiteLLM is not installed: run `python {Path(__file__).name} --install` first")

    with Scratch("bench-litellm-") as scratch:
        sim_port, port, fake_port, litellm_port = free_port(), free_port(), free_port(), free_port()
        simulator = scratch.keep(
            start_simulator(sim_port, "--first-token-latency", "0", "--tokens-per-second", "0", "--answer", ANSWER)
        )
        fake = scratch.keep(
            subprocess.Popen([sys.executable, __file__, "--serve", "fake-openai", "--port", str(fake_port)])
        )
        env = gateway_env(f"sqlite:///{scratch.dir / 'gw.db'}", port)
        url, key = asyncio.run(make_endpoint(env, sim_port))
        gateway = subprocess.Popen([sys.executable, "-m", "gateway", "serve"], env=env, stdout=subprocess.DEVNULL)
        scratch.keep(gateway)
        config = scratch.dir / "litellm.yaml"
        config.write_text(
            json.dumps(  # YAML is a superset of JSON
                {
                    "model_list": [
                        {
                            "model_name": MODEL,
                            "litellm_params": {
                                "model": f"openai/{MODEL}",
                                "api_base": f"http://127.0.0.1:{fake_port}/v1",
                                "api_key": "sk-fake",
                            },
                        }
                    ],
                    "litellm_settings": {"telemetry": False, "drop_params": True},
                }
            )
        )
        litellm_env = {
            **os.environ,
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no download of the price list at start
            "LITELLM_LOG": "ERROR",
            "DISABLE_SCHEMA_UPDATE": "True",
            "LITELLM_MASTER_KEY": LITELLM_KEY,  # a key check on each request, as the gateway does
        }
        litellm = subprocess.Popen(
            [str(litellm_bin), "--config", str(config), "--host", "127.0.0.1", "--port", str(litellm_port),
             "--num_workers", "1"],
            env=litellm_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        scratch.keep(litellm)
        wait_up(f"http://127.0.0.1:{sim_port}/_sim/stats", simulator)
        wait_up(f"http://127.0.0.1:{fake_port}/", fake)
        wait_up(f"http://127.0.0.1:{port}/healthz", gateway)
        for _ in range(6):  # LiteLLM takes a while to import and start
            try:
                wait_up(f"http://127.0.0.1:{litellm_port}/health/liveliness", litellm)
                break
            except SystemExit:
                if litellm.poll() is not None:
                    raise
        gw_url, gw_headers = (
            f"{url}/v1/chat/completions",
            {"authorization": f"Bearer {key}", "content-type": "application/json"},
        )
        ll_url = f"http://127.0.0.1:{litellm_port}/v1/chat/completions"
        ll_headers = {"authorization": f"Bearer {LITELLM_KEY}", "content-type": "application/json"}
        sim_url = f"http://127.0.0.1:{sim_port}/v1/chat-messages"
        sim_headers = {"authorization": "Bearer app-simulator", "content-type": "application/json"}
        sim_stream = json.dumps({"query": "hi", "user": "bench", "inputs": {}, "response_mode": "streaming"}).encode()
        fake_url = f"http://127.0.0.1:{fake_port}/v1/chat/completions"
        json_headers = {"content-type": "application/json"}

        ratios: dict[str, list[float]] = {"non-streaming": [], "streaming": []}
        added: dict[str, list[float]] = {"gateway": [], "litellm": []}
        for i in range(args.rounds):
            ll_plain, ll_stream, ll_cpu, ll_stream_cpu = measure(
                "litellm", ll_url, ll_headers, args.concurrency, args.duration, litellm.pid
            )
            # Both loads of round 1, warm-ups included.
            profiler = Profiler(gateway.pid, 2 * (args.duration + 1), args.profile) if args.profile and i == 0 else None
            gw_plain, gw_stream, gw_cpu, gw_stream_cpu = measure(
                "gateway", gw_url, gw_headers, args.concurrency, args.duration, gateway.pid
            )
            if profiler is not None:
                profiler.wait()
            ttft_s = args.duration / 2
            sim_t = asyncio.run(ttft(sim_url, sim_stream, sim_headers, b'"event": "message"', ttft_s))
            gw_t = asyncio.run(ttft(gw_url, chat_body(True), gw_headers, FIRST, ttft_s))
            fake_t = asyncio.run(ttft(fake_url, chat_body(True), json_headers, FIRST_SPACED, ttft_s))
            ll_t = asyncio.run(ttft(ll_url, chat_body(True), ll_headers, FIRST, ttft_s))
            ratios["non-streaming"].append(gw_plain.rps / ll_plain.rps)
            ratios["streaming"].append(gw_stream.rps / ll_stream.rps)
            added["gateway"].append(gw_t - sim_t)
            added["litellm"].append(ll_t - fake_t)
            print(f"\nround {i + 1}: {args.concurrency} concurrent connections, {args.duration:.0f} s each, loopback")
            for row in (ll_plain, gw_plain, ll_stream, gw_stream):
                print("  " + row.row())
            print(
                f"  gateway / litellm: non-streaming {gw_plain.rps / ll_plain.rps:.2f}x, "
                f"streaming {gw_stream.rps / ll_stream.rps:.2f}x"
            )
            print(
                f"  CPU per request (µs, the proxy process): non-streaming gateway {gw_cpu * 1e6:.0f} vs litellm "
                f"{ll_cpu * 1e6:.0f}; streaming gateway {gw_stream_cpu * 1e6:.0f} vs litellm {ll_stream_cpu * 1e6:.0f}"
            )
            print(
                f"  ttft p50 at c=1 (ms): simulator {sim_t:.2f}, gateway {gw_t:.2f} (adds {gw_t - sim_t:.2f});"
                f" fake openai {fake_t:.2f}, litellm {ll_t:.2f} (adds {ll_t - fake_t:.2f})",
                flush=True,
            )
        print(f"\nover {args.rounds} rounds, gateway / litellm requests/s:")
        for kind, values in ratios.items():
            print(f"  {kind:<14} {spread(values)}")
        print("added time to first token at c=1, p50 (ms):")
        for who, values in added.items():
            print(f"  {who:<14} {spread(values, ' ms')}")
        peaks = memory_mib(gateway.pid)["VmHWM"], memory_mib(litellm.pid)["VmHWM"]
        print(f"peak RSS: gateway {peaks[0]:.0f} MiB, litellm {peaks[1]:.0f} MiB")
        if args.profile:
            print("top self time in the gateway process, round 1 (py-spy):", *top_self(args.profile, 12), sep="\n  ")


if __name__ == "__main__":
    main()
