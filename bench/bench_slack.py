"""Benchmark: verified Slack event acks per second, the gateway's slack endpoint vs slack_bolt.

    python bench/bench_slack.py [--duration 10] [--concurrency 50] [--store sqlite|redis] [--rounds 3]
                                [--profile stacks.txt]   # py-spy the gateway in round 1 (pip install py-spy)

Both servers run as separate uvicorn processes (one at a time), and the load comes from this
process over loopback with 50 concurrent keep-alive connections. Every request is a distinct
`app_mention` event (its own `event_id`, so nothing is deduplicated away), signed with
slack_sdk's `SignatureVerifier` moments before it is sent.

- gateway: the production app with a slack endpoint. Each ack verifies the v0 signature,
  classifies the event and durably enqueues the answer job (an SQLite or Redis write) before
  answering 200. Job workers are off in that process, so the answers (which would call Dify and
  Slack) don't compete with the ack path being measured; the jobs stay queued, and their count
  is checked against the acks.
- bolt: slack_bolt's `AsyncApp` behind its Starlette adapter (`AsyncSlackRequestHandler`),
  verifying the same signature and acking from an `app_mention` listener (in memory, nothing
  durable: Bolt has no queue).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import secrets
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.loadgen import ratio_line, rounds_summary  # noqa: E402
from bench.profile import Profiler, load_with_cpu, top_self  # noqa: E402
from bench.servers import Scratch, free_port, gateway_env, stop, wait_up  # noqa: E402

if TYPE_CHECKING:
    from gateway.host.runtime import Gateway

SIGNING_SECRET = "bench-signing-secret-0123456789abcdef"
BOT_TOKEN = "xoxb-bench-token"


# -- the servers (this script re-runs itself with --serve) ----------------------------------------


def serve_gateway(port: int, *, workers: bool = False) -> None:
    """`dify-gateway`'s app on `port` as `dify-gateway serve` runs it; job workers off unless `workers`."""
    from gateway.http.app import create_app
    from gateway.http.server import GatewayServer, server_config
    from gateway.settings import Settings, bootstrap

    settings = bootstrap(Settings.from_env(os.environ)).settings
    app = create_app(settings, run_workers=workers)
    GatewayServer(server_config(app, settings, host="127.0.0.1", port=port, log_level="warning")).run()


def serve_bolt(port: int) -> None:
    import uvicorn
    from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
    from slack_bolt.async_app import AsyncApp
    from slack_bolt.authorization import AuthorizeResult
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def authorize(enterprise_id: str | None, team_id: str | None, **_: object) -> AuthorizeResult:
        # What an installation store would answer, without a network call (no auth.test).
        return AuthorizeResult(
            enterprise_id=enterprise_id, team_id=team_id, bot_token=BOT_TOKEN, bot_user_id="UBOT", bot_id="BBOT"
        )

    bolt = AsyncApp(signing_secret=SIGNING_SECRET, authorize=authorize)

    @bolt.event("app_mention")
    async def on_mention(ack: object, body: dict[str, object]) -> None:
        await ack()  # type: ignore[operator]

    handler = AsyncSlackRequestHandler(bolt)

    async def events(request: Request) -> Response:
        return await handler.handle(request)

    async def health(request: Request) -> Response:
        return Response(b"ok")

    app = Starlette(routes=[Route("/slack/events", events, methods=["POST"]), Route("/", health)])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# -- load -----------------------------------------------------------------------------------------


def signed_event(counter: itertools.count[int]) -> tuple[bytes, dict[str, str]]:
    from slack_sdk.signature import SignatureVerifier

    n = next(counter)
    body = json.dumps(
        {
            "token": "legacy",
            "team_id": "T1",
            "api_app_id": "A1",
            "type": "event_callback",
            # As Slack's are: random, not ascending, so each new job's dedupe key lands on a random leaf
            # of the key index, as it does in production (`docs/performance.md`, "event ids").
            "event_id": "Ev" + secrets.token_hex(6).upper(),
            "event_time": int(time.time()),
            "event": {
                "type": "app_mention",
                "user": "U1",
                "text": "<@UBOT> how fast are you?",
                "ts": f"1700000000.{n:06d}",
                "channel": "C1",
                "team": "T1",
            },
            "authorizations": [{"team_id": "T1", "user_id": "UBOT", "is_bot": True}],
        }
    ).encode()
    ts = str(int(time.time()))
    signature = SignatureVerifier(SIGNING_SECRET).generate_signature(timestamp=ts, body=body) or ""
    headers = {"content-type": "application/json", "x-slack-request-timestamp": ts, "x-slack-signature": signature}
    return body, headers


async def add_endpoint(gateway: Gateway) -> str:
    """A chat app `bench` that is never called (its Dify is unreachable) and a slack endpoint bound
    to it; the endpoint's URL."""
    from pydantic import SecretStr

    from gateway.records.apps import AppIn

    await gateway.apps.add(
        AppIn(name="bench", base_url="http://127.0.0.1:9/v1", api_key=SecretStr("app-bench"), mode="chat")
    )
    settings = {"signing_secret": SIGNING_SECRET, "bot_token": BOT_TOKEN, "api_base_url": "http://127.0.0.1:9/api"}
    _, url = await gateway.endpoints.create("slack", ["bench"], settings)
    return url


async def make_endpoint(env: dict[str, str]) -> str:
    from gateway.host.runtime import open_gateway
    from gateway.settings import Settings

    gateway = await open_gateway(Settings.from_env(env))
    try:
        return await add_endpoint(gateway)
    finally:
        await gateway.aclose()


def queued_jobs(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM jobs").fetchone()[0])


def redis_per_ack(url: str) -> str:
    """Redis's own count of what the gateway runs: script calls, commands and redis-server CPU
    (user + system, all its threads, the whole run) per queued job."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        stats = client.info("commandstats")
        cpu = client.info("cpu")
        jobs = int(client.zcard("dgw:jobs:created"))
    finally:
        client.close()
    scripts = sum(v["calls"] for k, v in stats.items() if k in ("cmdstat_evalsha", "cmdstat_eval"))
    commands = sum(v["calls"] for k, v in stats.items() if k not in ("cmdstat_evalsha", "cmdstat_eval"))
    return (
        f"redis: {jobs} jobs queued durably; per job {scripts / max(1, jobs):.3f} script calls (round trips),"
        f" {commands / max(1, jobs):.1f} other commands;"
        f" redis-server CPU {(cpu['used_cpu_user'] + cpu['used_cpu_sys']) / max(1, jobs) * 1e6:.0f} us per job"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", choices=["sqlite", "redis"], default="sqlite")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3, help="alternating bolt/gateway runs (median, min-max)")
    parser.add_argument("--profile", type=Path, help="py-spy the gateway under load; collapsed stacks to this file")
    parser.add_argument("--serve", choices=["gateway", "bolt"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve == "gateway":
        return serve_gateway(args.port)
    if args.serve == "bolt":
        return serve_bolt(args.port)

    with Scratch("bench-slack-") as scratch:
        db = scratch.dir / "gw.db"
        store = f"sqlite:///{db}"
        if args.store == "redis":
            store = scratch.redis()
        port, bolt_port = free_port(), free_port()
        env = gateway_env(store, port)
        url = asyncio.run(make_endpoint(env))
        me = [sys.executable, str(Path(__file__).resolve())]

        bolt = scratch.keep(subprocess.Popen([*me, "--serve", "bolt", "--port", str(bolt_port)], env=env))
        gateway = scratch.keep(subprocess.Popen([*me, "--serve", "gateway", "--port", str(port)], env=env))
        wait_up(f"http://127.0.0.1:{bolt_port}/", bolt)
        wait_up(f"http://127.0.0.1:{port}/healthz", gateway)
        counter = itertools.count()

        def events() -> tuple[bytes, dict[str, str]]:
            return signed_event(counter)

        # Both servers are up (idle) throughout; their loads alternate, so a change in the machine's
        # load hits both sides of a round alike.
        load = {"request": events, "concurrency": args.concurrency, "duration": args.duration}
        pairs = []
        for i in range(args.rounds):
            bolt_url = f"http://127.0.0.1:{bolt_port}/slack/events"
            bolt_result, bolt_cpu = load_with_cpu(bolt.pid, "slack_bolt AsyncApp", bolt_url, **load)
            profiler = Profiler(gateway.pid, args.duration + 1, args.profile) if args.profile and i == 0 else None
            gateway_result, gateway_cpu = load_with_cpu(gateway.pid, f"gateway slack ({args.store})", url, **load)
            if profiler is not None:
                profiler.wait()
            pairs.append((gateway_result, bolt_result))
            print(f"\nround {i + 1}: {args.concurrency} concurrent connections, {args.duration:.0f} s each, loopback")
            print(bolt_result.row())
            print(gateway_result.row())
            print(ratio_line(gateway_result, bolt_result))
            print(
                f"server CPU per request (warm-up included): bolt {bolt_cpu * 1e6:.0f} us,"
                f" gateway {gateway_cpu * 1e6:.0f} us"
            )
        stop(gateway)
        print()
        print(*rounds_summary(pairs), sep="\n")
        if args.store == "sqlite":
            print(f"gateway jobs queued durably: {queued_jobs(db)} (one per distinct event sent, warm-up included)")
        else:
            print(redis_per_ack(store))
        if args.profile:
            print("top self time in the gateway process, round 1 (py-spy):", *top_self(args.profile), sep="\n  ")


if __name__ == "__main__":
    main()
