"""The echo plugin's own edge cases (its routing and streaming are covered by tests/gateway/test_ingress.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from endpoints.echo import plugin as echo
from gateway.host.registry import PluginRegistry
from tests.support.gateway import Running, make_settings, running_app

pytestmark = pytest.mark.anyio


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    async with running_app(make_settings(tmp_path), registry=PluginRegistry([echo]), run_workers=False) as r:
        yield r


@pytest.mark.parametrize("chunks", ["²", "٣", "１２", "9" * 5000, "-3", " 2"])
async def test_odd_chunk_counts_answer_in_one_piece_not_500(running: Running, chunks: str) -> None:
    # str.isdigit() accepts "²" (int() refuses it) and int() refuses 5,000 digits: neither may be a 500.
    _, url = await running.gateway.endpoints.create("echo", [], {})
    response = await running.client.get(running.path(url), params={"chunks": chunks})
    assert response.status_code == 200
    assert response.json()["query_string"]


async def test_ascii_chunk_counts_still_stream(running: Running) -> None:
    _, url = await running.gateway.endpoints.create("echo", [], {})
    response = await running.client.get(running.path(url), params={"chunks": "3"})
    assert response.status_code == 200 and response.json()["greeting"] == "echo"
