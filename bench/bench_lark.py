"""Benchmark: the lark plugin against lark-oapi's dispatcher and the slack plugin, in one run.

    python bench/bench_lark.py [--duration 10] [--concurrency 50] [--rounds 3] [--questions 20]
                               [--profile stacks.txt]   # py-spy the gateway under the Lark load, round 1

1. Verified acks per second. One gateway process (job workers off) with a slack and a lark
   endpoint; the loads alternate. Every Slack request is a distinct signed `app_mention`; every
   Lark request a distinct `im.message.receive_v1`, encrypted with the Encrypt Key and signed as
   Lark sends it. Each ack verifies (Lark: decrypts once, in the verifier, which hands the event
   to the handler), classifies and durably enqueues the answer job before answering 200. The
   baseline, loaded first in each round with the same encrypted, signed events
   (`bench/baselines.py`; `python bench/baselines.py --install` once): lark-oapi's
   `EventDispatcherHandler` (Encrypt Key + Verification Token) with a message handler that does
   nothing, called from a Starlette handler under the same uvicorn through its raw-request API
   (the SDK's only adapter is Flask's, sync); nothing durable. Ratios and server CPU per request
   of both are printed.
2. Time from Dify's first token to the first platform write showing it. A gateway process with
   workers, the Dify simulator and the fake Slack and Lark APIs in this process (one clock): for
   each question, the moment the simulator sends its first text token, and the first write after
   it (Slack: `chat.update` of the placeholder; Lark: `cardkit/v1/cards`, the streamed card). Both
   endpoints update at most every 0.2 s. Sequential questions; medians and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_slack import SIGNING_SECRET, signed_event  # noqa: E402
from bench.loadgen import Result, ratio_line, rounds_summary, run_load  # noqa: E402
from bench.plugin_acks import Baseline, BaselineRun, versus_baseline  # noqa: E402
from bench.profile import Profiler, cpu_seconds, top_self  # noqa: E402
from bench.servers import free_port, gateway_env, stop, wait_up  # noqa: E402

ENCRYPT_KEY = "bench-encrypt-key-0123456789abcdef"
TOKEN = "bench-verification-token"
BOT_TOKEN = "xoxb-bench-token"
EDIT_INTERVAL = 0.2


def serve_gateway(port: int, workers: bool) -> None:
    import uvicorn

    from gateway.http.app import create_app
    from gateway.settings import Settings, bootstrap

    settings = bootstrap(Settings.from_env(os.environ)).settings
    app = create_app(settings, run_workers=workers)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def lark_request(counter: itertools.count[int]) -> tuple[bytes, dict[str, str]]:
    from gateway.testing import lark_event, lark_message_event

    n = next(counter)
    event = lark_message_event("how fast are you?", token=TOKEN, event_id=f"ev_bench{n:010d}")
    signed = lark_event(ENCRYPT_KEY, event, timestamp=time.time())
    return signed.body, signed.headers


async def make_endpoints(env: dict[str, str], dify: str, slack_api: str, lark_api: str) -> tuple[str, str]:
    """The slack and lark endpoints' URLs, bound to one chat app at `dify`."""
    from pydantic import SecretStr

    from gateway.host.runtime import open_gateway
    from gateway.records.apps import AppIn
    from gateway.settings import Settings

    gateway = await open_gateway(Settings.from_env(env))
    try:
        await gateway.apps.add(AppIn(name="bench", base_url=dify, api_key=SecretStr("app-simulator"), mode="chat"))
        slack = {
            "signing_secret": SIGNING_SECRET,
            "bot_token": BOT_TOKEN,
            "api_base_url": slack_api,
            "edit_interval": EDIT_INTERVAL,
        }
        lark = {
            "app_id": "cli_test123",
            "app_secret": "app-secret",
            "encrypt_key": ENCRYPT_KEY,
            "verification_token": TOKEN,
            "api_base_url": lark_api,
            "edit_interval": EDIT_INTERVAL,
        }
        _, slack_url = await gateway.endpoints.create("slack", ["bench"], slack)
        _, lark_url = await gateway.endpoints.create("lark", ["bench"], lark)
        return slack_url, lark_url
    finally:
        await gateway.aclose()


def acks(args: argparse.Namespace, env: dict[str, str], port: int, slack_url: str, lark_url: str) -> None:
    me = [sys.executable, str(Path(__file__).resolve())]
    gateway = subprocess.Popen([*me, "--serve", "gateway", "--port", str(port)], env=env)
    framework: BaselineRun | None = None
    try:
        wait_up(f"http://127.0.0.1:{port}/healthz", gateway)
        framework = BaselineRun(Baseline("lark", (ENCRYPT_KEY, TOKEN), "lark-oapi dispatcher"))
        slack_ids, lark_ids, baseline_ids = itertools.count(), itertools.count(), itertools.count()
        load: dict[str, Any] = {"concurrency": args.concurrency, "duration": args.duration}
        pairs = []
        against: list[tuple[Result, float, Result, float]] = []
        for i in range(args.rounds):
            base, base_cpu = framework.load(lambda: lark_request(baseline_ids), **load)
            cpu = cpu_seconds(gateway.pid)
            slack = asyncio.run(run_load("gateway slack", slack_url, request=lambda: signed_event(slack_ids), **load))
            slack_cpu, cpu = (cpu_seconds(gateway.pid) - cpu) / max(1, slack.requests), cpu_seconds(gateway.pid)
            profiler = Profiler(gateway.pid, args.duration + 1, args.profile) if args.profile and i == 0 else None
            lark = asyncio.run(run_load("gateway lark", lark_url, request=lambda: lark_request(lark_ids), **load))
            lark_cpu = (cpu_seconds(gateway.pid) - cpu) / max(1, lark.requests)
            if profiler is not None:
                profiler.wait()
            pairs.append((lark, slack))
            against.append((lark, lark_cpu, base, base_cpu))
            print(f"\nround {i + 1}: {args.concurrency} concurrent connections, {args.duration:.0f} s each, loopback")
            print(base.row())
            print(slack.row())
            print(lark.row())
            print(ratio_line(lark, slack))
            print(ratio_line(lark, base))
            print(
                f"server CPU per request: {base.name} {base_cpu * 1e6:.0f} us (no durable write),"
                f" gateway slack {slack_cpu * 1e6:.0f} us, lark {lark_cpu * 1e6:.0f} us"
            )
        print()
        print(*rounds_summary(pairs), sep="\n")
        print(*versus_baseline(against), sep="\n")
        if args.profile:
            print(
                "top self time in the gateway process, lark load, round 1 (py-spy):",
                *top_self(args.profile),
                sep="\n  ",
            )
    finally:
        stop(gateway)
        if framework is not None:
            stop(framework.proc)


class FirstToken:
    """The simulator's app, noting when each stream sends its first text token."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.times: list[float] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        seen = False

        async def noting(message: dict[str, Any]) -> None:
            nonlocal seen
            if not seen and message.get("type") == "http.response.body" and b'"answer"' in message.get("body", b""):
                seen = True
                self.times.append(time.monotonic())
            await send(message)

        await self.app(scope, receive, noting)


async def first_write(calls: list[Any], before: int, name: str) -> Any:
    """The first call named `name` after the first `before` calls (waited for)."""
    from gateway.testing.platforms.waiting import wait_until

    def found() -> list[Any]:
        return [c for c in calls[before:] if name in (getattr(c, "method", None), getattr(c, "route", None))]

    await wait_until(lambda: bool(found()), lambda: f"no {name} call", timeout=30)
    return found()[0]


async def first_writes(args: argparse.Namespace, env: dict[str, str], port: int) -> None:
    import httpx

    from gateway.simulator.app import create_simulator_app
    from gateway.simulator.config import SimulatorConfig
    from gateway.testing import FakeLark, FakeSlack, lark_event, lark_message_event, serving

    config = SimulatorConfig(first_token_latency=0.3, tokens_per_second=50)
    simulator = FirstToken(create_simulator_app(config))
    fake_slack, fake_lark = FakeSlack(token=BOT_TOKEN), FakeLark()
    me = [sys.executable, str(Path(__file__).resolve())]
    with (
        serving(simulator, name="dify-simulator") as dify,
        serving(fake_slack.app(), name="fake-slack") as slack_base,
        serving(fake_lark.app(), name="fake-lark") as lark_base,
    ):
        fake_slack.base, fake_lark.base = slack_base, lark_base
        slack_url, lark_url = await make_endpoints(env, f"{dify}/v1", fake_slack.api_url, fake_lark.api_url)
        gateway = subprocess.Popen([*me, "--serve", "workers", "--port", str(port)], env=env)
        slack_gaps, lark_gaps = [], []
        try:
            await asyncio.to_thread(wait_up, f"http://127.0.0.1:{port}/healthz", gateway)
            async with httpx.AsyncClient(timeout=30) as client:
                for n in range(args.questions):
                    body, headers = signed_event(itertools.count(10_000_000 + n))
                    before = len(fake_slack.calls)
                    await client.post(slack_url, content=body, headers=headers)
                    update = await first_write(fake_slack.calls, before, "chat.update")
                    slack_gaps.append(update.at - simulator.times[-1])

                    signed = lark_event(ENCRYPT_KEY, lark_message_event(f"q {n}", token=TOKEN), timestamp=time.time())
                    before = len(fake_lark.calls)
                    await client.send(signed.httpx(lark_url))
                    card = await first_write(fake_lark.calls, before, "create_card")
                    lark_gaps.append(card.at - simulator.times[-1])
                    await first_write(fake_lark.calls, before, "settings")  # the answer is over
        finally:
            stop(gateway)
    slack_ms, lark_ms = statistics.median(slack_gaps) * 1000, statistics.median(lark_gaps) * 1000
    print(f"\nfirst Dify token -> first platform write, {args.questions} questions each (median):")
    print(f"  slack (chat.update of the placeholder)   {slack_ms:7.1f} ms")
    print(f"  lark  (the CardKit card, created + sent) {lark_ms:7.1f} ms")
    print(f"  ratio lark / slack: {lark_ms / slack_ms:.2f}x")
    print(f"  lark tenant tokens fetched: {fake_lark.tokens_issued} (cached across {args.questions} answers)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3, help="alternating slack/lark runs (median, min-max)")
    parser.add_argument("--questions", type=int, default=20, help="answers timed from first token to first write")
    parser.add_argument(
        "--profile", type=Path, help="py-spy the gateway under the lark load, round 1; collapsed stacks"
    )
    parser.add_argument("--serve", choices=["gateway", "workers"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve_gateway(args.port, workers=args.serve == "workers")

    workdir = Path(tempfile.mkdtemp(prefix="bench-lark-"))
    try:
        port = free_port()
        env = gateway_env(f"sqlite:///{workdir / 'acks.db'}", port)
        slack_url, lark_url = asyncio.run(
            make_endpoints(env, "http://127.0.0.1:9/v1", "http://127.0.0.1:9/api", "http://127.0.0.1:9/open-apis")
        )
        acks(args, env, port, slack_url, lark_url)
        port = free_port()
        asyncio.run(first_writes(args, gateway_env(f"sqlite:///{workdir / 'writes.db'}", port), port))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
