"""Benchmark: the lark plugin against lark-oapi's dispatcher and the slack plugin, in one run.

    python bench/bench_lark.py [--duration 10] [--concurrency 50] [--store sqlite|redis] [--rounds 3]
                               [--questions 20] [--profile stacks.txt]  # py-spy, the Lark load of round 1

1. Verified acks per second. One gateway process (job workers off) with a slack and a lark
   endpoint; the loads alternate. Every Slack request is a distinct signed `app_mention`; every
   Lark request a distinct `im.message.receive_v1`, encrypted with the Encrypt Key and signed as
   Lark sends it. Each ack verifies (Lark: decrypts once, in the verifier, which hands the event
   to the handler), classifies and durably enqueues the answer job before answering 200
   (`bench.plugin_acks`). The baseline, loaded first in each round with the same encrypted, signed events
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
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_slack import SIGNING_SECRET, serve_gateway, signed_event  # noqa: E402
from bench.plugin_acks import Baseline, add_arguments, compare_with_slack  # noqa: E402
from bench.servers import Scratch, free_port, gateway_env, stop, wait_up  # noqa: E402

ENCRYPT_KEY = "bench-encrypt-key-0123456789abcdef"
TOKEN = "bench-verification-token"
BOT_TOKEN = "xoxb-bench-token"
EDIT_INTERVAL = 0.2
# The lark endpoint's settings but its API base URL (and the edit interval, when answers are timed).
LARK_SETTINGS = {
    "app_id": "cli_test123",
    "app_secret": "app-secret",
    "encrypt_key": ENCRYPT_KEY,
    "verification_token": TOKEN,
}


def lark_request(counter: itertools.count[int]) -> tuple[bytes, dict[str, str]]:
    from gateway.testing import lark_event, lark_message_event

    # Lark's event ids are 32 random hex digits: each new job's dedupe key lands on a random leaf of
    # the key index, as it does in production (`docs/performance.md`, "event ids").
    event = lark_message_event("how fast are you?", token=TOKEN, event_id=secrets.token_hex(16))
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
        lark = {**LARK_SETTINGS, "api_base_url": lark_api, "edit_interval": EDIT_INTERVAL}
        _, slack_url = await gateway.endpoints.create("slack", ["bench"], slack)
        _, lark_url = await gateway.endpoints.create("lark", ["bench"], lark)
        return slack_url, lark_url
    finally:
        await gateway.aclose()


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
        gateway = subprocess.Popen([*me, "--serve-workers", str(port)], env=env)
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
    add_arguments(parser)
    parser.add_argument("--questions", type=int, default=20, help="answers timed from first token to first write")
    parser.add_argument("--serve-workers", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        return serve_gateway(args.serve)
    if args.serve_workers is not None:
        return serve_gateway(args.serve_workers, workers=True)

    settings = {**LARK_SETTINGS, "api_base_url": "http://127.0.0.1:9/open-apis"}
    baseline = Baseline("lark", (ENCRYPT_KEY, TOKEN), "lark-oapi dispatcher")
    compare_with_slack(Path(__file__).resolve(), "lark", settings, lark_request, args, baseline=baseline)
    if args.questions < 1:
        return
    with Scratch("bench-lark-") as scratch:
        port = free_port()
        asyncio.run(first_writes(args, gateway_env(f"sqlite:///{scratch.dir / 'writes.db'}", port), port))


if __name__ == "__main__":
    main()
