"""Benchmark the Dify bridge through the webhook plugin, beside its baselines in the same run.

    python bench/bench_webhook.py [--streams 50] [--rounds 6] [--callbacks 400]

1. Time to first token at 50 concurrent streams: the simulator called directly (its own first
   token latency) vs the same answer streamed through a webhook endpoint (signed request, durable
   job, SSE relay). The difference is what the gateway adds.
2. Callbacks per second to a loopback receiver: 400 signed requests with a callback_url, answered
   by the simulator and delivered as signed callbacks, vs a plain loop posting the same number of
   bodies to the same receiver (the receiver's own ceiling).
Every server runs in its own process.
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

from bench.loadgen import ttft_lines  # noqa: E402
from bench.profile import Profiler  # noqa: E402
from bench.servers import Scratch, free_port, gateway_env, start_simulator, wait_up  # noqa: E402
from gateway.host.runtime import open_gateway  # noqa: E402
from gateway.records.apps import AppIn  # noqa: E402
from gateway.security.signatures import parse_webhook_secret, standard_webhook_headers  # noqa: E402
from gateway.settings import Settings  # noqa: E402

RECEIVER = """
import sys, uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
count = 0
async def hook(request):
    global count
    await request.body()
    count += 1
    return Response(status_code=204)
async def counted(request):
    return JSONResponse({"count": count})
app = Starlette(routes=[Route("/hook", hook, methods=["POST"]), Route("/count", counted)])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
"""


async def first_token(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str], marker: bytes
) -> float:
    started = time.perf_counter()
    async with session.post(url, data=body, headers=headers) as response:
        async for line in response.content:
            if line.startswith(marker):
                elapsed = time.perf_counter() - started
                await response.read()
                return elapsed
    raise RuntimeError(f"no token from {url}: HTTP {response.status}")


async def ttft(name: str, make: object, streams: int, rounds: int) -> list[float]:
    samples: list[float] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=streams)) as session:
        for _ in range(rounds + 1):  # the first round warms up
            batch = await asyncio.gather(*(make(session) for _ in range(streams)))  # type: ignore[operator]
            samples.extend(batch)
    return samples[streams:]


async def main_async(args: argparse.Namespace) -> None:
    with Scratch("bench-webhook-") as scratch:
        sim_port, port, recv_port = free_port(), free_port(), free_port()
        simulator = start_simulator(
            sim_port,
            "--first-token-latency",
            "0.05",
            "--tokens-per-second",
            "0",
            "--answer",
            "The quick brown fox jumps over the lazy dog.",
        )
        scratch.keep(simulator)
        receiver = subprocess.Popen([sys.executable, "-c", RECEIVER, str(recv_port)])
        scratch.keep(receiver)
        env = gateway_env(
            f"sqlite:///{scratch.dir / 'gw.db'}",
            port,
            GATEWAY_CALLBACK_ALLOW_HOSTS="127.0.0.1",
            GATEWAY_CALLBACK_ALLOW_HTTP="true",
            GATEWAY_WORKERS="100",
        )
        gateway = await open_gateway(Settings.from_env(env))
        try:
            await gateway.apps.add(
                AppIn(
                    name="sim",
                    base_url=f"http://127.0.0.1:{sim_port}/v1",
                    api_key=SecretStr("app-simulator"),
                    mode="chat",
                )
            )
            _, url, shown = await gateway.endpoints.create_with_secrets("webhook", ["sim"], {})
        finally:
            await gateway.aclose()
        key = parse_webhook_secret(shown["secret"])
        server = subprocess.Popen([sys.executable, "-m", "gateway", "serve"], env=env, stdout=subprocess.DEVNULL)
        scratch.keep(server)
        wait_up(f"http://127.0.0.1:{sim_port}/_sim/stats", simulator)
        wait_up(f"http://127.0.0.1:{recv_port}/count", receiver)
        wait_up(f"http://127.0.0.1:{port}/healthz", server)
        spy = Profiler(server.pid, 12, Path(args.profile)) if args.profile else None

        direct_body = json.dumps({"query": "hi", "user": "bench", "inputs": {}, "response_mode": "streaming"}).encode()
        direct_headers = {"authorization": "Bearer app-simulator", "content-type": "application/json"}

        async def direct(session: aiohttp.ClientSession) -> float:
            return await first_token(
                session,
                f"http://127.0.0.1:{sim_port}/v1/chat-messages",
                direct_body,
                direct_headers,
                b'data: {"event": "message"',
            )

        def signed(payload: dict[str, object]) -> tuple[bytes, dict[str, str]]:
            body = json.dumps(payload).encode()
            headers = standard_webhook_headers([key], "msg_" + secrets.token_hex(8), int(time.time()), body)
            return body, {**headers, "content-type": "application/json"}

        async def through(session: aiohttp.ClientSession) -> float:
            body, headers = signed({"query": "hi", "user": "bench", "stream": True})
            return await first_token(session, url, body, headers, b"event: delta")

        base = await ttft("direct", direct, args.streams, args.rounds)
        gw = await ttft("gateway", through, args.streams, args.rounds)

        # Callbacks: everything queued at once, then count arrivals at the receiver.
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=50)) as session:

            async def count() -> int:
                async with session.get(f"http://127.0.0.1:{recv_port}/count") as r:
                    return int((await r.json())["count"])

            start_count = await count()
            started = time.perf_counter()
            sem = asyncio.Semaphore(50)

            async def submit() -> None:
                body, headers = signed(
                    {"query": "hi", "user": "bench", "callback_url": f"http://127.0.0.1:{recv_port}/hook"}
                )
                async with sem, session.post(url, data=body, headers=headers) as r:
                    assert r.status == 202, r.status

            await asyncio.gather(*(submit() for _ in range(args.callbacks)))
            while await count() - start_count < args.callbacks and time.perf_counter() - started < 120:
                await asyncio.sleep(0.05)
            delivered = await count() - start_count
            cb_rate = delivered / (time.perf_counter() - started)

            plain_body = b'{"type":"answer.completed","data":{}}'
            started = time.perf_counter()

            async def post_plain() -> None:
                async with sem, session.post(f"http://127.0.0.1:{recv_port}/hook", data=plain_body) as r:
                    await r.read()

            await asyncio.gather(*(post_plain() for _ in range(args.callbacks)))
            plain_rate = args.callbacks / (time.perf_counter() - started)
        if spy is not None:
            spy.wait()

        print(f"\nTime to first token, {args.streams} concurrent streams x {args.rounds} rounds (ms)")
        print("\n".join(ttft_lines("webhook", base, gw)))
        print(f"\nCallbacks to a loopback receiver ({args.callbacks}, each answered by the simulator first)")
        print(f"  signed callbacks   {cb_rate:7.0f}/s   delivered {delivered}/{args.callbacks}")
        print(f"  plain POST loop    {plain_rate:7.0f}/s   (receiver ceiling)   ratio {cb_rate / plain_rate:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--callbacks", type=int, default=400)
    parser.add_argument("--profile", default="", help="py-spy the gateway into this file (raw format)")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
