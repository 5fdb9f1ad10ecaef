"""`Context.memory`: values kept in-process for their ttl on the injected clock, bounded, the
endpoint's own, and started anew when the endpoint changes."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.clock import FakeClock
from gateway.plugin import Memory
from gateway.records.apps import AppIn
from tests.support.gateway import make_settings, running_app

pytestmark = pytest.mark.anyio


def test_a_value_is_kept_for_its_ttl_on_the_clock() -> None:
    clock = FakeClock()
    memory = Memory(clock)
    memory.set("bot", {"id": 1}, ttl=10.0)
    clock.advance(9.9)
    assert memory.get("bot") == {"id": 1}
    clock.advance(0.1)
    assert memory.get("bot") is None and len(memory) == 0
    memory.set("bot", 2, ttl=5.0)
    memory.forget("bot")
    assert memory.get("bot") is None


def test_past_its_size_the_oldest_goes_first() -> None:
    memory = Memory(FakeClock(), size=2)
    memory.set("a", 1, ttl=60)
    memory.set("b", 2, ttl=60)
    memory.set("a", 3, ttl=60)  # set again: now the newest
    memory.set("c", 4, ttl=60)
    assert (memory.get("a"), memory.get("b"), memory.get("c")) == (3, None, 4)
    with pytest.raises(ValueError):
        Memory(FakeClock(), size=0)


async def test_each_endpoint_has_its_own_and_a_changed_endpoint_starts_anew(tmp_path: Path) -> None:
    async with running_app(make_settings(tmp_path), run_workers=False) as running:
        gateway = running.gateway
        await gateway.apps.add(
            AppIn.model_validate({"name": "a", "base_url": "http://dify.test/v1", "api_key": "k", "mode": "chat"})
        )
        one, _ = await gateway.endpoints.create("echo", ["a"], {})
        two, _ = await gateway.endpoints.create("echo", ["a"], {})
        plugin = gateway.registry.get("echo")
        assert plugin is not None
        ctx_one = await gateway.contexts.for_request(one, plugin)
        ctx_one.memory.set("k", "v", ttl=60)
        assert (await gateway.contexts.for_request(one, plugin)).memory.get("k") == "v"
        assert (await gateway.contexts.for_request(two, plugin)).memory.get("k") is None
        changed = await gateway.endpoints.update(one.id, settings={})
        assert (await gateway.contexts.for_request(changed, plugin)).memory.get("k") is None


async def test_get_or_load_loads_once_and_keeps_nothing_for_none() -> None:
    clock = FakeClock()
    memory = Memory(clock)
    loads: list[str] = []
    value: str | None = None

    async def load() -> str | None:
        loads.append("x")
        return value

    assert await memory.get_or_load("k", load, ttl=5) is None
    assert await memory.get_or_load("k", load, ttl=5) is None
    assert len(loads) == 2  # nothing found: looked for again
    value = "v"
    assert await memory.get_or_load("k", load, ttl=5) == "v"
    assert await memory.get_or_load("k", load, ttl=5) == "v"
    assert len(loads) == 3
    clock.advance(5)
    assert await memory.get_or_load("k", load, ttl=5) == "v" and len(loads) == 4
