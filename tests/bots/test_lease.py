"""One Discord connection per bot token across replicas: the lease, the runner, and two real
processes on one Redis where the holder is SIGKILLed and the other takes over."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pydantic import SecretStr

from bots.lease import ConnectionLease, lease_key
from bots.runner import LeasedRunner
from gateway.clock import SystemClock
from gateway.host.runtime import open_gateway
from gateway.records.apps import AppIn
from gateway.settings import Settings
from gateway.storage import open_store
from gateway.storage.base import Store
from tests.gateway.delivery.chat_fakes import VirtualClock
from tests.support.discord_interactions import APPLICATION_ID, new_key, public_key_hex
from tests.support.gateway import ADMIN_TOKEN, SECRET_KEY

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "bot-token-" + "y" * 30
CLOCK = SystemClock()  # the store's TTLs run on real time in these tests


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    store = await open_store(f"sqlite:///{tmp_path / 'lease.db'}", clock=SystemClock())
    yield store
    await store.aclose()


def test_the_lease_key_never_contains_the_token() -> None:
    key = lease_key("discord", TOKEN)
    assert TOKEN not in key and key.startswith("bots:lease:discord:")
    assert key == lease_key("discord", TOKEN) != lease_key("discord", TOKEN + "z")
    with pytest.raises(ValueError):
        ConnectionLease(None, key, ttl=0)  # type: ignore[arg-type]  # deliberately no store: ttl=0 is refused first


async def test_one_holder_at_a_time(store: Store) -> None:
    a, b = ConnectionLease(store, "k", ttl=30, owner="a"), ConnectionLease(store, "k", ttl=30, owner="b")
    assert await a.acquire()
    assert not await b.acquire()
    assert not await b.renew() and not await b.release()  # b can't touch a's lease
    assert await a.renew() and await a.holder() == "a"
    assert await a.release()
    assert await b.acquire() and await b.holder() == "b"


async def test_the_runner_waits_for_the_lease_then_connects(store: Store) -> None:
    holder = ConnectionLease(store, "k", ttl=30, owner="other")
    assert await holder.acquire()
    connected = asyncio.Event()

    async def connect() -> None:
        connected.set()
        await asyncio.Event().wait()

    runner = LeasedRunner(
        ConnectionLease(store, "k", ttl=0.3, owner="me"), connect, clock=CLOCK, poll=0.02, renew_every=0.05
    )
    task = asyncio.create_task(runner.run())
    await asyncio.sleep(0.1)
    assert not connected.is_set()  # someone else holds it
    await holder.release()
    await asyncio.wait_for(connected.wait(), 5)
    await asyncio.sleep(0.6)  # twice the TTL: held throughout by renewals
    assert await holder.holder() == "me"
    task.cancel()
    await asyncio.wait({task})
    assert await holder.holder() is None  # released on the way out


async def test_losing_the_lease_disconnects_and_waits_again(store: Store) -> None:
    connections: asyncio.Queue[str] = asyncio.Queue()
    stopped = asyncio.Event()

    async def connect() -> None:
        connections.put_nowait("up")
        try:
            await asyncio.Event().wait()
        finally:
            stopped.set()

    lease = ConnectionLease(store, "k", ttl=30, owner="me")
    task = asyncio.create_task(LeasedRunner(lease, connect, clock=CLOCK, poll=0.02, renew_every=0.02).run())
    await asyncio.wait_for(connections.get(), 5)
    await store.kv_set("k", "thief", ttl=0.3)  # e.g. it lapsed during a store outage and was taken
    await asyncio.wait_for(stopped.wait(), 5)
    await asyncio.wait_for(connections.get(), 5)  # the thief's lease runs out: connected again
    task.cancel()
    await asyncio.wait({task})


async def test_a_connection_that_fails_releases_and_raises(store: Store) -> None:
    async def connect() -> None:
        raise RuntimeError("bad token")

    lease = ConnectionLease(store, "k", ttl=30, owner="me")
    with pytest.raises(RuntimeError, match="bad token"):
        await LeasedRunner(lease, connect, clock=CLOCK).run()
    assert await lease.holder() is None


async def test_a_connection_that_ends_ends_the_runner(store: Store) -> None:
    async def connect() -> None:
        return None

    lease = ConnectionLease(store, "k", ttl=30, owner="me")
    await LeasedRunner(lease, connect, clock=CLOCK).run()
    assert await lease.holder() is None


class _FlakyStore:
    """A store whose lease calls fail (unreachable) after the lease was taken."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.down = False

    def __getattr__(self, name: str) -> object:
        attr = getattr(self.store, name)
        if name.startswith("kv_") and self.down:

            async def fail(*args: object, **kwargs: object) -> object:
                raise ConnectionError("store down")

            return fail
        return attr


async def test_a_store_outage_while_waiting_is_survived(store: Store) -> None:
    flaky = _FlakyStore(store)
    flaky.down = True
    connected = asyncio.Event()

    async def connect() -> None:
        connected.set()

    task = asyncio.create_task(LeasedRunner(ConnectionLease(flaky, "k", ttl=30), connect, clock=CLOCK, poll=0.02).run())  # type: ignore[arg-type]
    await asyncio.sleep(0.1)
    assert not connected.is_set()
    flaky.down = False
    await asyncio.wait_for(task, 5)
    assert connected.is_set()


async def test_renewals_failing_past_the_ttl_disconnect(store: Store) -> None:
    flaky = _FlakyStore(store)
    stopped = asyncio.Event()

    async def connect() -> None:
        flaky.down = True
        try:
            await asyncio.Event().wait()
        finally:
            stopped.set()

    lease = ConnectionLease(flaky, "k", ttl=0.2, owner="me")  # type: ignore[arg-type]
    task = asyncio.create_task(LeasedRunner(lease, connect, clock=CLOCK, poll=0.02, renew_every=0.05).run())
    await asyncio.wait_for(stopped.wait(), 5)  # the lease may have lapsed: stop rather than risk two bots
    task.cancel()
    await asyncio.wait({task})


@dataclass
class ClockLease:
    """A lease kept in memory with its TTL on `clock` (as the store keeps it), held by `holder`."""

    clock: VirtualClock
    ttl: float
    holder_: str | None = None
    until: float = 0.0
    key: str = "k"
    owner: str = "me"
    renewals: list[float] = field(default_factory=list)

    def _free(self) -> bool:
        return self.holder_ is None or self.clock.monotonic() >= self.until

    async def acquire(self) -> bool:
        if not self._free():
            return False
        self.holder_, self.until = self.owner, self.clock.monotonic() + self.ttl
        return True

    async def renew(self) -> bool:
        if self.holder_ != self.owner or self._free():
            return False
        self.until = self.clock.monotonic() + self.ttl
        self.renewals.append(self.clock.monotonic())
        return True

    async def release(self) -> bool:
        mine = self.holder_ == self.owner
        if mine:
            self.holder_ = None
        return mine


async def test_polls_and_renewals_go_by_the_injected_clock() -> None:
    clock = VirtualClock()
    lease = ClockLease(clock, ttl=90, holder_="other", until=600)  # another replica, for ten minutes
    connected: list[float] = []

    async def connect() -> None:
        connected.append(clock.monotonic())
        await clock.sleep(3600)  # an hour connected, then the connection ends by itself

    runner = LeasedRunner(lease, connect, clock=clock, poll=60)  # type: ignore[arg-type]
    await asyncio.wait_for(runner.run(), 10)  # (real seconds: a guard against waiting for real)

    assert connected == [600]  # the first poll once the other's lease ran out
    gaps = [b - a for a, b in zip([600, *lease.renewals], lease.renewals, strict=False)]
    assert len(lease.renewals) >= 100 and all(gap == 30 for gap in gaps)  # every third of the TTL
    assert lease.holder_ is None  # released when the connection ended


# -- two processes on one Redis --------------------------------------------------------------------


def _start(env: dict[str, str], endpoint_id: str, out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.bot_process", endpoint_id, str(out)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _pids(out: Path) -> list[int]:
    return [int(line) for line in out.read_text().split()] if out.exists() else []


async def _until(condition: Callable[[], bool], procs: list[subprocess.Popen[bytes]], timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        for proc in procs:
            if proc.poll() is not None and proc.returncode not in (-signal.SIGKILL, 0):
                raise AssertionError(proc.stderr.read().decode() if proc.stderr else "a bot process died")
        if loop.time() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.05)


@pytest.mark.live
@pytest.mark.redis
async def test_two_replicas_one_connection_and_takeover_after_sigkill(redis_db: str, tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")},
        "GATEWAY_STORE": redis_db,
        "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN,
        "GATEWAY_SECRET_KEY": SECRET_KEY,
        "GATEWAY_TEST_LEASE_TTL": "0.6",
    }
    settings = Settings.from_env(env).with_changes(admin_token=SecretStr(ADMIN_TOKEN))
    gateway = await open_gateway(settings)
    out = tmp_path / "connected.txt"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        await gateway.apps.add(
            AppIn.model_validate({"name": "a", "base_url": "http://dify.test/v1", "api_key": "app-k", "mode": "chat"})
        )
        values = {"application_id": APPLICATION_ID, "public_key": public_key_hex(new_key()), "bot_token": TOKEN}
        record, _ = await gateway.endpoints.create("discord", ["a"], values)
        lease = ConnectionLease(gateway.store, lease_key("discord", TOKEN), ttl=0.6, owner="observer")
        procs = [_start(env, record.id, out) for _ in range(2)]

        await _until(lambda: len(_pids(out)) == 1, procs)
        [first] = _pids(out)
        assert first in {p.pid for p in procs}
        assert f":{first}:" in (await lease.holder() or "")
        await asyncio.sleep(1.0)  # longer than the TTL: the waiting replica still must not connect
        assert _pids(out) == [first]

        victim = next(p for p in procs if p.pid == first)
        survivor = next(p for p in procs if p.pid != first)
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
        loop = asyncio.get_running_loop()
        killed_at = loop.time()
        await _until(lambda: len(_pids(out)) == 2, procs)
        takeover = loop.time() - killed_at
        assert _pids(out) == [first, survivor.pid]
        assert f":{survivor.pid}:" in (await lease.holder() or "")
        print(f"takeover after {takeover:.2f} s (lease TTL 0.6 s, poll 0.1 s)")

        survivor.send_signal(signal.SIGTERM)  # a clean stop hands the lease on at once
        assert survivor.wait(timeout=10) == 0
        assert await lease.holder() is None
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if proc.stderr:
                proc.stderr.close()
        await gateway.aclose()
