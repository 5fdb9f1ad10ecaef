"""Benchmark: `apply` of a file of N endpoints, vs `export` of the same gateway (the baseline).

    python bench/bench_apply.py [--endpoints 1000] [--store sqlite|redis] [--rounds 3]

One gateway process (in-process services, no HTTP) with one app and N `echo` endpoints:

- export: read every record, decrypt its secrets, write the YAML file (`ConfigService.export`);
- apply (create): the same file applied to a fresh, empty store: every endpoint created with its id;
- apply (no-op): the file applied again to that gateway: everything read and compared, nothing written;
- apply (change): the file with every endpoint's greeting changed: N updates.

Each is timed over `--rounds` runs; the median is reported with its ratio to export's median.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pydantic import SecretStr  # noqa: E402

from endpoints.echo import plugin as echo  # noqa: E402
from gateway.cli.configcmd import config_service  # noqa: E402
from gateway.configfile.exporter import to_file  # noqa: E402
from gateway.host.registry import PluginRegistry  # noqa: E402
from gateway.host.runtime import Gateway, open_gateway  # noqa: E402
from gateway.records.apps import AppIn  # noqa: E402
from gateway.settings import Settings  # noqa: E402

SECRET = "bench-secret-key-" + "b" * 40


def settings(store: str) -> Settings:
    return Settings(
        store=store, admin_token=SecretStr("a" * 40), secret_key=(SecretStr(SECRET),), public_url="http://gw"
    )


async def timed(action: Callable[..., Awaitable[object]], *args: object) -> float:
    start = time.perf_counter()
    await action(*args)
    return time.perf_counter() - start


async def populated(store: str, count: int) -> tuple[Gateway, str, dict[str, str]]:
    gw = await open_gateway(settings(store), registry=PluginRegistry([echo]))
    await gw.apps.add(AppIn(name="bench", base_url="http://dify.test/v1", api_key=SecretStr("app-bench"), mode="chat"))
    for index in range(count):
        await gw.endpoints.create("echo", [], {"greeting": f"hi {index}", "token": f"tok-{index}"}, name=f"ep{index}")
    state, _ = await config_service(gw).state()
    config, secrets = to_file(state)
    return gw, (await config_service(gw).export()).text, secrets


async def fresh_store(kind: str, tmp: Path, round_: int, redis_url: str | None) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp / f'fresh{round_}.db'}"
    import redis.asyncio as aioredis

    assert redis_url is not None
    url = redis_url.rsplit("/", 1)[0] + f"/{10 + round_ % 5}"
    client = aioredis.Redis.from_url(url)
    await client.flushdb()
    await client.aclose()
    return url


async def run(count: int, kind: str, rounds: int, redis_url: str | None) -> None:
    results: dict[str, list[float]] = {"export": [], "apply (create)": [], "apply (no-op)": [], "apply (change)": []}
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        source_store = await fresh_store(kind, tmp, 99, redis_url)
        source, text, secrets = await populated(source_store, count)
        changed = text.replace("greeting: hi ", "greeting: hello ")
        try:
            for round_ in range(rounds):
                results["export"].append(await timed(config_service(source).export))
                target = await open_gateway(
                    settings(await fresh_store(kind, tmp, round_, redis_url)), registry=PluginRegistry([echo])
                )
                try:
                    service = config_service(target)
                    results["apply (create)"].append(await timed(service.apply, text, secrets))
                    results["apply (no-op)"].append(await timed(service.apply, text, secrets))
                    results["apply (change)"].append(await timed(service.apply, changed, secrets))
                finally:
                    await target.aclose()
        finally:
            await source.aclose()
    baseline = statistics.median(results["export"])
    print(f"{count} endpoints, store {kind}, {rounds} rounds (median seconds; ratio to export)")
    for name, times in results.items():
        median = statistics.median(times)
        print(f"  {name:16s} {median:8.3f} s  x{median / baseline:6.2f}  ({count / median:8.0f} endpoints/s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--endpoints", type=int, default=1000)
    parser.add_argument("--store", choices=["sqlite", "redis"], default="sqlite")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.store == "redis":
        from bench.servers import Scratch

        with Scratch("bench-apply-") as scratch:
            asyncio.run(run(args.endpoints, args.store, args.rounds, scratch.redis()))
    else:
        asyncio.run(run(args.endpoints, args.store, args.rounds, None))


if __name__ == "__main__":
    main()
