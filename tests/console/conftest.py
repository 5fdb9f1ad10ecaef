"""The console's live stack: the gateway and the Dify simulator on real uvicorn servers, and
Debian's Chromium driven by Playwright (no browser download: `executable_path`)."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.http.app import create_app
from gateway.simulator.app import create_simulator_app
from gateway.simulator.config import SimulatorConfig
from tests.support.gateway import admin_headers, live_app, live_server, make_settings

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / ".artifacts" / "console"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass
class ConsoleStack:
    client: httpx.AsyncClient
    gateway: str
    simulator: str

    async def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return await self.client.request(method, f"{self.gateway}/admin/api{path}", headers=admin_headers(), **kwargs)


@contextlib.asynccontextmanager
async def console_stack(tmp_path: Path, **settings: Any) -> AsyncIterator[ConsoleStack]:
    config = SimulatorConfig(first_token_latency=0.01, tokens_per_second=200)
    async with (
        live_server(create_simulator_app(config)) as simulator,
        live_app(
            lambda url: create_app(make_settings(tmp_path, public_url=url, rate_limit_per_minute=0, **settings))
        ) as gateway,
        httpx.AsyncClient(timeout=30) as client,
    ):
        yield ConsoleStack(client, gateway, simulator)


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    if shutil.which(CHROMIUM) is None:
        pytest.fail("chromium is not installed (apt-get install chromium; scripts/test does it)", pytrace=False)
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()
