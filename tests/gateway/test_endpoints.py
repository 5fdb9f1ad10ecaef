"""The endpoint service directly: what the CLI reaches without the admin API's validation."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from endpoints.echo import plugin as echo
from gateway.exceptions import BadRequest
from gateway.registry import PluginRegistry
from tests.support.gateway import Running, make_settings, running_app

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["sqlite", "redis"])
async def running(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Running]:
    changes = {"store": request.getfixturevalue("redis_url")} if request.param == "redis" else {}
    settings = make_settings(tmp_path, **changes)
    async with running_app(settings, registry=PluginRegistry([echo]), run_workers=False) as running:
        yield running


@pytest.mark.parametrize("grace", [math.inf, math.nan, 1e300])
async def test_rotation_refuses_a_grace_it_cannot_store(running: Running, grace: float) -> None:
    record, url = await running.gateway.endpoints.create("echo", [], {})
    with pytest.raises(BadRequest):
        await running.gateway.endpoints.rotate(record.id, grace=grace)
    assert (await running.gateway.endpoints.get(record.id)).tokens == record.tokens
    assert (await running.client.get(running.path(url))).status_code == 200
