"""The web console's first load: bytes over the wire and time to interactive, in Chromium.

    python bench/bench_console.py [--rounds 5]

A `dify-gateway serve` process on SQLite; each round a fresh browser context (empty cache) opens
`/` (redirected to the console), logs in and waits for the overview. Reported: the bytes the
browser received for the first load (every response, headers and compressed bodies, as Chromium
counts them), the time until the login form has focus (interactive), and until the overview is
drawn after logging in. Uses Debian's chromium (apt-get install chromium).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.servers import ADMIN, Scratch, free_port, gateway_env, wait_up  # noqa: E402
from tests.console.conftest import CHROMIUM, CHROMIUM_ARGS  # noqa: E402  # the flags the browser tests use


async def one_load(browser: Any, base: str) -> tuple[int, int, float, float]:
    """(bytes, requests, ms to an interactive login form, ms from submitting the token to the overview)."""
    context = await browser.new_context()
    page = await context.new_page()
    cdp = await context.new_cdp_session(page)
    await cdp.send("Network.enable")
    received: list[int] = []
    cdp.on("Network.loadingFinished", lambda event: received.append(int(event["encodedDataLength"])))
    started = time.perf_counter()
    await page.goto(f"{base}/")
    await page.wait_for_selector("input[name=token]:focus")
    interactive = (time.perf_counter() - started) * 1000
    weight, count = sum(received), len(received)
    await page.fill("input[name=token]", ADMIN)
    started = time.perf_counter()
    await page.press("input[name=token]", "Enter")
    await page.wait_for_selector("svg.chart")
    overview = (time.perf_counter() - started) * 1000
    await context.close()
    return weight, count, interactive, overview


async def measure(base: str, rounds: int) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        results = [await one_load(browser, base) for _ in range(rounds)]
        await browser.close()
    weights = {r[0] for r in results}
    print(f"first load: {min(weights)}-{max(weights)} bytes over the wire in {results[0][1]} responses")
    print(f"time to interactive (login form focused): median {statistics.median(r[2] for r in results):.0f} ms")
    print(f"log in to overview drawn: median {statistics.median(r[3] for r in results):.0f} ms ({rounds} rounds)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with Scratch("bench-console-") as scratch:
        port = free_port()
        env = gateway_env(f"sqlite:///{scratch.dir / 'gateway.db'}", port)
        gateway = scratch.keep(subprocess.Popen([sys.executable, "-m", "gateway", "serve"], cwd=ROOT, env=env))
        wait_up(f"http://127.0.0.1:{port}/healthz", gateway)
        asyncio.run(measure(f"http://127.0.0.1:{port}", args.rounds))


if __name__ == "__main__":
    main()
