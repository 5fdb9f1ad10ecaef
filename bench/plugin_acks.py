"""Verified acks per second of a chat plugin vs the slack plugin, in one gateway process, one run;
and vs the platform's usual framework doing the same verification and ack without a durable write.

`compare_with_slack(...)` creates a slack endpoint and the plugin's (bound to an app that is never
called: job workers are off), starts `dify-gateway`'s app under uvicorn (`bench.bench_slack.
serve_gateway`, through the calling script's `--serve PORT`), then alternates loads of distinct
signed requests between the two and prints each round, the ratios and their median and min–max.
With `baseline` (a `Baseline`, served by `bench.baselines` in its own venv and process), each round
first loads the framework's server with the same requests, and the plugin is compared with it too:
throughput ratio and server CPU per request of both (/proc, all threads), median and min–max.
With `profile`, py-spy samples the gateway during the plugin's load in round 1.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import baselines
from bench.bench_slack import add_endpoint as add_slack_endpoint, signed_event
from bench.loadgen import Result, ratio_line, rounds_summary, spread
from bench.profile import Profiler, load_with_cpu, top_self
from bench.servers import Scratch, free_port, gateway_env, stop, wait_up

__all__ = ["Baseline", "BaselineRun", "add_arguments", "compare_with_slack"]

Signed = tuple[bytes, dict[str, str]]


@dataclass(frozen=True)
class Baseline:
    """A `bench.baselines` server: its platform, the secrets it verifies with, its name in the rows."""

    platform: str
    secrets: tuple[str, ...]
    name: str


class BaselineRun:
    """A running baseline server: `load(...)` runs one round against it, noting its CPU per request."""

    def __init__(self, baseline: Baseline) -> None:
        self.baseline = baseline
        port = free_port()
        self.proc = baselines.start(baseline.platform, port, *baseline.secrets)
        self.url = f"http://127.0.0.1:{port}{baselines.PATHS[baseline.platform]}"
        try:
            wait_up(f"http://127.0.0.1:{port}/", self.proc)
        except BaseException:
            stop(self.proc)
            raise

    def load(self, request: Callable[[], Signed], **common: Any) -> tuple[Result, float]:
        """One load (`run_load` options); the result and the server's CPU seconds per request."""
        return load_with_cpu(self.proc.pid, self.baseline.name, self.url, request=request, **common)


def versus_baseline(pairs: list[tuple[Result, float, Result, float]]) -> list[str]:
    """Median and min–max over rounds of (subject, its CPU/request, baseline, its CPU/request)."""
    subject, baseline = pairs[0][0].name, pairs[0][2].name
    return [
        *rounds_summary([(s, b) for s, _, b, _ in pairs]),
        f"  CPU per request, {baseline}: " + spread([b * 1e6 for _, _, _, b in pairs], " us"),
        f"  CPU per request, {subject}: " + spread([s * 1e6 for _, s, _, _ in pairs], " us"),
        "  CPU per request ratio " + spread([s / b for _, s, _, b in pairs]),
    ]


async def _make_endpoints(
    env: dict[str, str], plugin: str, settings: Mapping[str, Any], seed: Mapping[str, str]
) -> tuple[str, str]:
    from gateway.host.context import EndpointStorage
    from gateway.host.runtime import open_gateway
    from gateway.settings import Settings

    gateway = await open_gateway(Settings.from_env(env))
    try:
        slack_url = await add_slack_endpoint(gateway)
        record, url = await gateway.endpoints.create(plugin, ["bench"], dict(settings))
        storage = EndpointStorage(gateway.store, record.id, gateway.clock)
        for key, value in seed.items():  # what the endpoint knows in the common case (e.g. after `connect`)
            await storage.set(key, value)
        return slack_url, url
    finally:
        await gateway.aclose()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options `compare_with_slack` reads (and the hidden `--serve PORT`)."""
    parser.add_argument("--store", choices=["sqlite", "redis"], default="sqlite")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", type=Path, help="py-spy the gateway under the plugin's load; collapsed stacks")
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)


def compare_with_slack(
    script: Path,
    plugin: str,
    settings: Mapping[str, Any],
    request: Callable[[itertools.count[int]], Signed],
    args: argparse.Namespace,
    *,
    seed: Mapping[str, str] | None = None,
    baseline: Baseline | None = None,
) -> None:
    """See the module docstring; `script --serve PORT` must serve the gateway (`add_arguments`).
    `seed`: keys set in the plugin endpoint's storage first; `baseline`: the framework to compare with."""
    store, rounds, duration, concurrency, profile = (
        args.store,
        args.rounds,
        args.duration,
        args.concurrency,
        args.profile,
    )
    with Scratch(f"bench-{plugin}-") as scratch:
        url = f"sqlite:///{scratch.dir / 'gw.db'}"
        if store == "redis":
            url = scratch.redis()
        port = free_port()
        env = gateway_env(url, port)
        slack_url, plugin_url = asyncio.run(_make_endpoints(env, plugin, settings, seed or {}))
        gateway = subprocess.Popen([sys.executable, str(script), "--serve", str(port)], env=env)
        scratch.keep(gateway)
        wait_up(f"http://127.0.0.1:{port}/healthz", gateway)
        framework = BaselineRun(baseline) if baseline is not None else None
        if framework is not None:
            scratch.keep(framework.proc)
        slack_counter, counter, baseline_counter = itertools.count(), itertools.count(), itertools.count()
        common: dict[str, Any] = {"concurrency": concurrency, "duration": duration}
        pairs = []
        against: list[tuple[Result, float, Result, float]] = []
        for i in range(rounds):
            if framework is not None:
                base, base_cpu = framework.load(lambda: request(baseline_counter), **common)
            slack, slack_cpu = load_with_cpu(
                gateway.pid, f"slack ({store})", slack_url, request=lambda: signed_event(slack_counter), **common
            )
            profiler = Profiler(gateway.pid, duration + 1, profile) if profile and i == 0 else None
            subject, subject_cpu = load_with_cpu(
                gateway.pid, f"{plugin} ({store})", plugin_url, request=lambda: request(counter), **common
            )
            if profiler is not None:
                profiler.wait()
            pairs.append((subject, slack))
            print(f"\nround {i + 1}: {concurrency} concurrent connections, {duration:.0f} s each, loopback")
            if framework is not None:
                print(base.row())
            print(slack.row())
            print(subject.row())
            print(ratio_line(subject, slack))
            print(
                f"gateway CPU per request (all threads, warm-up included): slack {slack_cpu * 1e6:.0f} us,"
                f" {plugin} {subject_cpu * 1e6:.0f} us"
            )
            if framework is not None:
                against.append((subject, subject_cpu, base, base_cpu))
                print(ratio_line(subject, base))
                print(f"{base.name} CPU per request (no durable write): {base_cpu * 1e6:.0f} us")
        print()
        print(*rounds_summary(pairs), sep="\n")
        if against:
            print(*versus_baseline(against), sep="\n")
        if profile:
            print(f"top self time in the gateway process, {plugin} load, round 1 (py-spy):")
            print(*top_self(profile), sep="\n  ")
