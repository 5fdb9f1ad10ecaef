"""Benchmark: signed callbacks delivered per second from a backlog, vs a plain POST loop.

    python bench/bench_callbacks.py [--jobs 3000] [--store sqlite|redis] [--rounds 3]

A receiver (a bare Starlette app answering 200, its own uvicorn process) takes every POST.

- gateway: a webhook endpoint's backlog of `--jobs` finished answers waiting to be called back
  (durable `callback` jobs, as `ctx.callbacks.send` queues them), then the job workers of one
  process (`GATEWAY_CALLBACK_WORKERS` dedicated to callbacks) claim, sign (Standard Webhooks),
  POST and complete each one; timed from the workers' start until every job is done.
- baseline: the same number of POSTs of the same body to the same receiver from a plain httpx
  loop with as many concurrent senders as the process has workers able to deliver callbacks
  (`GATEWAY_WORKERS` + `GATEWAY_CALLBACK_WORKERS`), unsigned, nothing stored. The ratio is
  against this loop, as in earlier rounds; the same loop over aiohttp (the client the gateway's
  sender uses) is printed beside it, the fairer ceiling.

Each round also prints the CPU time (user + system, every thread of this process) per delivery
of each side, which the machine's load moves far less than the rates, and the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.servers import Scratch, free_port, gateway_env, wait_up  # noqa: E402


async def done_count(store_url: str) -> int:
    if store_url.startswith("sqlite:///"):
        path = store_url.removeprefix("sqlite:///")

        def count() -> int:
            with contextlib.closing(sqlite3.connect(path)) as conn:
                return int(conn.execute("SELECT count(*) FROM jobs WHERE state = 'done'").fetchone()[0])

        return await asyncio.to_thread(count)
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(store_url)
    try:
        return int(await client.zcard("dgw:jobs:state:done"))
    finally:
        await client.aclose()


async def gateway_round(env: dict[str, str], receiver: str, jobs: int, tag: str) -> tuple[float, int, float]:
    """(seconds to deliver `jobs` callbacks, how many were done, CPU seconds), one process's workers."""
    from gateway.host.runtime import open_gateway
    from gateway.records.apps import AppIn
    from gateway.security.signatures import new_webhook_secret
    from gateway.settings import Settings

    # The backlog is queued by one Gateway and delivered by another, as after a restart: no
    # in-process wake-ups, the workers find the jobs by claiming.
    gateway = await open_gateway(Settings.from_env(env))
    try:
        if await gateway.apps.cached("bench") is None:
            await gateway.apps.add(
                AppIn(name="bench", base_url="http://127.0.0.1:9/v1", api_key="app-bench", mode="chat")  # type: ignore[arg-type]
            )
        record, _ = await gateway.endpoints.create("webhook", ["bench"], {"secret": new_webhook_secret()})
        plugin = gateway.registry.get("webhook")
        assert plugin is not None
        ctx = await gateway.contexts.build(record, plugin)
        body = {"answer": "x" * 200, "conversation_id": "c1"}
        await asyncio.gather(
            *(
                ctx.callbacks.send(f"{receiver}/cb", "answer.completed", {**body, "i": i}, msg_id=f"msg_{tag}_{i}")
                for i in range(jobs)
            )
        )
    finally:
        await gateway.aclose()

    gateway = await open_gateway(Settings.from_env(env))
    try:
        before = await done_count(env["GATEWAY_STORE"])
        started, cpu = time.perf_counter(), time.process_time()
        workers = asyncio.create_task(gateway.workers.run())
        done = 0
        while done < jobs and time.perf_counter() - started < 120:
            await asyncio.sleep(0.02)
            done = await done_count(env["GATEWAY_STORE"]) - before
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        workers.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await workers
        return elapsed, done, cpu
    finally:
        await gateway.aclose()


PLAIN_BODY = b'{"type":"answer.completed","data":{"answer":"' + b"x" * 200 + b'"}}'
PLAIN_HEADERS = {"content-type": "application/json"}


async def post_all(send: Callable[[], Awaitable[None]], jobs: int, senders: int) -> tuple[float, float]:
    """`jobs` calls of `send` from `senders` concurrent senders; wall and CPU seconds."""
    left = jobs

    async def sender() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await send()

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(sender() for _ in range(senders)))
    return time.perf_counter() - started, time.process_time() - cpu


async def plain_round(receiver: str, jobs: int, senders: int) -> tuple[float, float]:
    import httpx

    async with httpx.AsyncClient() as client:

        async def send() -> None:
            response = await client.post(f"{receiver}/cb", content=PLAIN_BODY, headers=PLAIN_HEADERS)
            response.raise_for_status()

        return await post_all(send, jobs, senders)


async def plain_aiohttp_round(receiver: str, jobs: int, senders: int) -> tuple[float, float]:
    import aiohttp

    async with aiohttp.ClientSession() as session:

        async def send() -> None:
            async with session.post(f"{receiver}/cb", data=PLAIN_BODY, headers=PLAIN_HEADERS) as response:
                await response.read()
                response.raise_for_status()

        return await post_all(send, jobs, senders)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", choices=["sqlite", "redis"], default="sqlite")
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    with Scratch("bench-callbacks-") as scratch:
        store = f"sqlite:///{scratch.dir / 'gw.db'}"
        if args.store == "redis":
            store = scratch.redis()
        port, receiver_port = free_port(), free_port()
        env = gateway_env(store, port, GATEWAY_CALLBACK_ALLOW_HTTP="true", GATEWAY_CALLBACK_ALLOW_HOSTS="127.0.0.1")
        from gateway.settings import Settings

        # General workers take any kind of job, callbacks included, beside the dedicated ones.
        settings = Settings.from_env(env)
        senders = settings.workers + settings.callback_workers
        receiver_proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "baseline_app.py"), str(receiver_port)])
        scratch.keep(receiver_proc)
        receiver = f"http://127.0.0.1:{receiver_port}"
        wait_up(receiver + "/", receiver_proc)

        ratios: list[float] = []
        for i in range(args.rounds):
            load = os.getloadavg()[0]
            plain = plain_round(receiver, args.jobs, senders)
            plain_s, plain_cpu = asyncio.run(plain)
            aio_s, aio_cpu = asyncio.run(plain_aiohttp_round(receiver, args.jobs, senders))
            gateway_s, done, gateway_cpu = asyncio.run(gateway_round(env, receiver, args.jobs, tag=str(i)))
            plain_rate, gateway_rate, aio_rate = args.jobs / plain_s, done / gateway_s, args.jobs / aio_s
            ratios.append(gateway_rate / plain_rate)
            print(
                f"round {i + 1}: plain POST loop ({senders} senders) {plain_rate:7.0f}/s   "
                f"gateway callbacks ({args.store}, {senders} workers) {gateway_rate:7.0f}/s "
                f"({done}/{args.jobs} delivered)   ratio {gateway_rate / plain_rate:.2f}x   "
                f"CPU/delivery {1e6 * gateway_cpu / max(1, done):.0f} us vs plain {1e6 * plain_cpu / args.jobs:.0f} us"
                f"   load {load:.1f}\n"
                f"         (plain aiohttp loop {aio_rate:7.0f}/s, CPU/request {1e6 * aio_cpu / args.jobs:.0f} us;"
                f" gateway / aiohttp loop {gateway_rate / aio_rate:.2f}x)",
                flush=True,
            )
        ordered = sorted(ratios)
        print(
            f"over {args.rounds} rounds: gateway / plain ratio median {statistics.median(ordered):.2f}x "
            f"(min {ordered[0]:.2f}x, max {ordered[-1]:.2f}x)"
        )


if __name__ == "__main__":
    main()
