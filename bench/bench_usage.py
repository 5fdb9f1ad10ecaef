"""What recording usage costs on the answer path: answers/s with and without it, in one run.

    python bench/bench_usage.py [--duration 10] [--concurrency 50] [--store sqlite|redis]

Three gateway processes on the same kind of store, one after the other, each answering OpenAI
`chat/completions` (`stream: false`) from the same Dify simulator (first token at once):

1. `GATEWAY_USAGE_RECORDING=false`: the baseline, no usage code on the answer path;
2. recording on, no budgets: one atomic store write per answer (`counters_add_once`);
3. recording on with a budget covering the app (never reached): also a budget check before each
   answer (the budgets read and one month counter) and a second counter read after it.

Printed: each row, and each recording row's ratio to the baseline (throughput, p50, p99).
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

from bench.loadgen import Result, ratio_line, run_load  # noqa: E402
from bench.servers import Scratch, free_port, gateway_env, stop, wait_up  # noqa: E402
from gateway.host.runtime import open_gateway  # noqa: E402
from gateway.records.apps import AppIn  # noqa: E402
from gateway.settings import Settings  # noqa: E402
from gateway.usage import BudgetIn  # noqa: E402

ANSWER = "The quick brown fox jumps over the lazy dog."


async def prepare(settings: Settings, sim_port: int, budget: bool) -> tuple[str, str]:
    """The app and an openai endpoint (and the budget) in the store; the endpoint URL and key."""
    gateway = await open_gateway(settings)
    try:
        app = AppIn(name="sim", base_url=f"http://127.0.0.1:{sim_port}/v1", api_key="app-simulator", mode="chat")  # type: ignore[arg-type]
        await gateway.apps.add(app)
        _, url, shown = await gateway.endpoints.create_with_secrets("openai", ["sim"], {})
        if budget:
            await gateway.usage.budgets.set(BudgetIn(scope="app", target="sim", tokens=10**12))
        return url, shown["api_key"]
    finally:
        await gateway.aclose()


async def measure(
    name: str, store: str, sim_port: int, args: argparse.Namespace, *, recording: bool, budget: bool
) -> Result:
    port = free_port()
    env = gateway_env(store, port, GATEWAY_USAGE_RECORDING="true" if recording else "false")
    url, key = await prepare(Settings.from_env(env), sim_port, budget)
    server = subprocess.Popen([sys.executable, "-m", "gateway", "serve"], env=env, stdout=subprocess.DEVNULL)
    try:
        wait_up(f"http://127.0.0.1:{port}/healthz", server)
        endpoint = f"{url}/v1/chat/completions"
        headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
        body = json.dumps({"model": "sim", "messages": [{"role": "user", "content": "hi"}], "user": "bench"}).encode()
        async with aiohttp.ClientSession() as session, session.post(endpoint, data=body, headers=headers) as r:
            answer = await r.json()
            assert r.status == 200 and answer["choices"][0]["message"]["content"] == ANSWER, answer
        return await run_load(
            name, endpoint, body=body, headers=headers, concurrency=args.concurrency, duration=args.duration
        )
    finally:
        stop(server)


async def main_async(args: argparse.Namespace) -> None:
    with Scratch("bench-usage-") as scratch:
        sim_port = free_port()
        simulator = subprocess.Popen(
            [sys.executable, "-m", "gateway", "simulate-dify", "--port", str(sim_port), "--first-token-latency", "0"]
            + ["--tokens-per-second", "0", "--answer", ANSWER],
            stdout=subprocess.DEVNULL,
        )
        scratch.keep(simulator)
        wait_up(f"http://127.0.0.1:{sim_port}/_sim/stats", simulator)
        stores: list[str] = []
        for i in range(3):
            if args.store == "redis":
                url = scratch.redis()
                stores.append(url)
            else:
                stores.append(f"sqlite:///{scratch.dir / f'gw{i}.db'}")
        off = await measure("recording off", stores[0], sim_port, args, recording=False, budget=False)
        on = await measure("recording on", stores[1], sim_port, args, recording=True, budget=False)
        guarded = await measure("recording + budget", stores[2], sim_port, args, recording=True, budget=True)

        print(
            f"\n{args.concurrency} concurrent connections, {args.duration:.0f} s each, {args.store}, 1 gateway process"
        )
        for result in (off, on, guarded):
            print("  " + result.row())
        print("  " + ratio_line(on, off))
        print("  " + ratio_line(guarded, off))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--store", choices=["sqlite", "redis"], default="sqlite")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
