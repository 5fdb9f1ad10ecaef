"""Benchmark: two gateway replicas on one Redis vs one, acks/s and answers/s.

    python bench/bench_replicas.py [--duration 10] [--answers 1000] [--rounds 3]

Every server is its own process; the replicas share nothing but Redis (one `redis-server`).

1. acks: verified Slack `app_mention` acks (each a durable job enqueue, as `bench_slack.py`),
   workers off; 50 concurrent connections in all, split evenly over the replicas.
2. answers: `--answers` signed webhook requests with a `callback_url`, sent over the replicas
   round-robin (50 at a time); each is a durable job whose worker asks the Dify simulator
   (answering at once) and then delivers the answer as a signed callback to a counting receiver.
   Timed from the first request until the receiver has every callback.

Printed per round: the rates with one and with two replicas and their ratio, and Redis's own
count of commands and round trips (script calls count once) per ack and per answer, from
`INFO commandstats` before and after. On a 2-core machine the load generator, Redis, the
simulator and the replicas share the cores, so the ratio says how far a second replica helps
here, not on a machine with a core per replica.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import secrets
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_slack import make_endpoint as make_slack_endpoint, signed_event  # noqa: E402
from bench.bench_webhook import RECEIVER  # noqa: E402
from bench.loadgen import run_load, spread  # noqa: E402
from bench.servers import Scratch, free_port, gateway_env, start_simulator, stop, wait_up  # noqa: E402

SLACK_SERVER = ROOT / "bench" / "bench_slack.py"


def redis_counts(url: str) -> tuple[int, int, int]:
    """(commands, script calls, jobs created) so far; a script call is one round trip of several commands."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        stats = client.info("commandstats")
        jobs = int(client.zcard("dgw:jobs:created"))
    finally:
        client.close()
    calls = {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}
    scripts = calls.get("evalsha", 0) + calls.get("eval", 0)
    # The commands a script runs are counted under their own names too.
    commands = sum(n for name, n in calls.items() if name not in ("evalsha", "eval", "info"))
    return commands, scripts, jobs


# -- acks -----------------------------------------------------------------------------------------


def start_ack_replicas(n: int, env: dict[str, str]) -> tuple[list[subprocess.Popen[bytes]], list[int]]:
    ports = [free_port() for _ in range(n)]
    procs = [
        subprocess.Popen([sys.executable, str(SLACK_SERVER), "--serve", "gateway", "--port", str(port)], env=env)
        for port in ports
    ]
    for proc, port in zip(procs, ports, strict=True):
        wait_up(f"http://127.0.0.1:{port}/healthz", proc)
    return procs, ports


async def ack_load(urls: list[str], counter: itertools.count[int], concurrency: int, duration: float) -> float:
    """Acks/s over the replicas; `counter` numbers the events across the whole run (no repeats)."""

    def events() -> tuple[bytes, dict[str, str]]:
        return signed_event(counter)

    per = max(1, concurrency // len(urls))
    results = await asyncio.gather(
        *(
            run_load(f"replica {i}", url, request=events, concurrency=per, duration=duration)
            for i, url in enumerate(urls)
        )
    )
    if any(r.errors for r in results):
        raise SystemExit(f"acks failed: {[r.errors for r in results]}")
    return sum(r.rps for r in results)


# -- answers --------------------------------------------------------------------------------------


async def make_webhook_endpoint(env: dict[str, str], sim_port: int) -> tuple[str, str]:
    from pydantic import SecretStr

    from gateway.host.runtime import open_gateway
    from gateway.records.apps import AppIn
    from gateway.settings import Settings

    gateway = await open_gateway(Settings.from_env(env))
    try:
        app = AppIn(
            name="sim", base_url=f"http://127.0.0.1:{sim_port}/v1", api_key=SecretStr("app-simulator"), mode="chat"
        )
        await gateway.apps.add(app)
        record, url, shown = await gateway.endpoints.create_with_secrets("webhook", ["sim"], {})
        return url, shown["secret"]
    finally:
        await gateway.aclose()


async def answer_load(urls: list[str], secret: str, receiver: str, answers: int) -> float:
    from gateway.security.signatures import parse_webhook_secret, standard_webhook_headers

    key = parse_webhook_secret(secret)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=50)) as session:

        async def count() -> int:
            async with session.get(f"{receiver}/count") as r:
                return int((await r.json())["count"])

        before = await count()
        sem = asyncio.Semaphore(50)
        started = time.perf_counter()

        async def submit(i: int) -> None:
            body = json.dumps({"query": "hi", "user": f"u{i}", "callback_url": f"{receiver}/hook"}).encode()
            headers = standard_webhook_headers([key], "msg_" + secrets.token_hex(8), int(time.time()), body)
            async with sem, session.post(urls[i % len(urls)], data=body, headers=headers) as r:
                if r.status != 202:
                    raise SystemExit(f"an answer request was refused: HTTP {r.status}")

        await asyncio.gather(*(submit(i) for i in range(answers)))
        done = 0
        while done < answers and time.perf_counter() - started < 300:
            await asyncio.sleep(0.05)
            done = await count() - before
        return done / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--answers", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    with Scratch("bench-replicas-") as scratch:
        store = scratch.redis()
        sim_port, recv_port = free_port(), free_port()
        answer = "The quick brown fox jumps over the lazy dog."
        simulator = scratch.keep(
            start_simulator(sim_port, "--first-token-latency", "0", "--tokens-per-second", "0", "--answer", answer)
        )
        receiver_proc = scratch.keep(subprocess.Popen([sys.executable, "-c", RECEIVER, str(recv_port)]))
        receiver = f"http://127.0.0.1:{recv_port}"
        wait_up(f"http://127.0.0.1:{sim_port}/_sim/stats", simulator)
        wait_up(f"{receiver}/count", receiver_proc)

        # Acks and answers use separate Redis databases, so the acks' queued jobs (whose workers
        # are off) are never claimed by the answer phase's workers.
        ans_store = store.rpartition("/")[0] + "/1"
        ack_env = gateway_env(store, 0)
        ans_env = gateway_env(
            ans_store, 0, GATEWAY_CALLBACK_ALLOW_HTTP="true", GATEWAY_CALLBACK_ALLOW_HOSTS="127.0.0.1"
        )
        slack_url = asyncio.run(make_slack_endpoint(ack_env))
        slack_path = slack_url.split("/", 3)[3]
        hook_url, secret = asyncio.run(make_webhook_endpoint(ans_env, sim_port))
        hook_path = hook_url.split("/", 3)[3]

        events = itertools.count()  # one numbering for the whole run: no event is sent twice
        ack_ratios: list[float] = []
        ans_ratios: list[float] = []
        for i in range(args.rounds):
            acks: dict[int, float] = {}
            answers: dict[int, float] = {}
            per_ack = per_answer = (0.0, 0.0)
            for n in (1, 2):
                replicas, ports = start_ack_replicas(n, ack_env)
                try:
                    c0, t0, j0 = redis_counts(store)
                    urls = [f"http://127.0.0.1:{p}/{slack_path}" for p in ports]
                    acks[n] = asyncio.run(ack_load(urls, events, args.concurrency, args.duration))
                    c1, t1, j1 = redis_counts(store)
                finally:
                    for proc in replicas:
                        stop(proc)
                queued = max(1, j1 - j0)  # every ack queued a job of its own (warm-up included)
                per_ack = ((c1 - c0) / queued, (t1 - t0) / queued) if n == 1 else per_ack

                ports = [free_port() for _ in range(n)]
                replicas = [
                    subprocess.Popen(
                        [sys.executable, "-m", "gateway", "serve"],
                        env={**ans_env, "GATEWAY_PORT": str(port)},
                        stdout=subprocess.DEVNULL,
                    )
                    for port in ports
                ]
                try:
                    for proc, port in zip(replicas, ports, strict=True):
                        wait_up(f"http://127.0.0.1:{port}/healthz", proc)
                    c0, t0, _ = redis_counts(store)
                    urls = [f"http://127.0.0.1:{p}/{hook_path}" for p in ports]
                    answers[n] = asyncio.run(answer_load(urls, secret, receiver, args.answers))
                    c1, t1, _ = redis_counts(store)
                finally:
                    for proc in replicas:
                        stop(proc)
                if n == 1:
                    per_answer = ((c1 - c0) / args.answers, (t1 - t0) / args.answers)
            ack_ratios.append(acks[2] / acks[1])
            ans_ratios.append(answers[2] / answers[1])
            print(
                f"round {i + 1}: acks/s one {acks[1]:6.0f}, two {acks[2]:6.0f} ({acks[2] / acks[1]:.2f}x)   "
                f"answers/s one {answers[1]:5.0f}, two {answers[2]:5.0f} ({answers[2] / answers[1]:.2f}x)",
                flush=True,
            )
            print(
                f"  one replica, redis per ack: {per_ack[0]:.1f} commands, {per_ack[1]:.3f} script calls;"
                f" per answer: {per_answer[0]:.1f} commands, {per_answer[1]:.2f} script calls (idle polling included)",
                flush=True,
            )
        print(f"\nover {args.rounds} rounds, two replicas / one:")
        print(f"  acks/s     {spread(ack_ratios)}")
        print(f"  answers/s  {spread(ans_ratios)}")


if __name__ == "__main__":
    main()
