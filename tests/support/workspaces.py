"""Two teams on one gateway, for the workspace tests: on SQLite and on a real Redis."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from gateway.clock import FakeClock
from gateway.records.admintokens import AdminTokenIn
from gateway.records.apps import AppIn
from gateway.records.workspaces import WorkspaceIn
from gateway.storage.base import Job, Store
from gateway.storage.redis import RedisStore
from gateway.storage.sqlite import SQLiteStore
from gateway.usage.budgets import BudgetIn
from tests.support.gateway import ADMIN_TOKEN, Running, make_settings, running_app

API = "/admin/api"
DIFY_A = "https://dify-a.test/v1"
DIFY_B = "https://dify-b.test/v1"
KEY = "app-" + "K" * 28


@contextlib.asynccontextmanager
async def open_test_store(kind: str, tmp_path: Path, clock: FakeClock, redis_url: str | None) -> AsyncIterator[Store]:
    """A fresh store of `kind` ("sqlite" or "redis"), closed after the block."""
    opened: Store
    if kind == "sqlite":
        opened = await SQLiteStore.open(str(tmp_path / "store.db"), clock=clock)
    else:
        assert redis_url is not None
        opened = RedisStore.from_url(redis_url, clock=clock, prefix=f"test-{uuid.uuid4().hex}:")
    try:
        yield opened
    finally:
        await opened.aclose()


def new_clock() -> FakeClock:
    return FakeClock(time.time())  # the real time: Redis TTLs and the fake clock agree at first


@dataclass
class Team:
    """One workspace's things: its app names, its endpoint, a job of that endpoint, its tokens."""

    workspace: str
    apps: list[str]
    endpoint: str
    job: str
    admin_token: str
    viewer_token: str
    extra: dict[str, Any] = field(default_factory=dict)


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


OPERATOR = bearer(ADMIN_TOKEN)


async def seed_team(running: Running, workspace: str, apps: list[str], base_url: str) -> Team:
    """Create `workspace` with `apps` (chat mode: Dify is not called), an echo endpoint bound to the
    first, a dead job of that endpoint, and an admin and a viewer token."""
    gw = running.gateway
    if workspace != "default":
        await gw.workspaces.create(WorkspaceIn(name=workspace))
    for name in apps:
        await gw.apps.add(AppIn(name=name, base_url=base_url, api_key=SecretStr(KEY), mode="chat"), workspace=workspace)
    record, _ = await gw.endpoints.create("echo", [apps[0]], {}, name=f"{workspace}-echo", workspace=workspace)
    job, _ = await gw.store.job_enqueue(
        Job(id=f"job_{uuid.uuid4().hex[:12]}", kind="plugin", payload={}, endpoint_id=record.id, max_attempts=1)
    )
    await gw.store.job_dead(job.id, None, "failed for the test")
    _, admin = await gw.admin_tokens.create(AdminTokenIn(workspace=workspace, role="admin"))
    _, viewer = await gw.admin_tokens.create(AdminTokenIn(workspace=workspace, role="viewer"))
    budget = await gw.usage.budgets.set(BudgetIn(workspace=workspace, scope="app", target=apps[0], tokens=10**6))
    return Team(workspace, apps, record.id, job.id, admin, viewer, extra={"budget": budget.id})


@contextlib.asynccontextmanager
async def two_teams(store: Store, clock: FakeClock, tmp_path: Path) -> AsyncIterator[tuple[Running, Team, Team]]:
    """A gateway on `store` with workspaces team-a (apps support, sales) and team-b (apps support, billing)."""
    async with running_app(make_settings(tmp_path), store=store, clock=clock, run_workers=False) as running:
        a = await seed_team(running, "team-a", ["support", "sales"], DIFY_A)
        b = await seed_team(running, "team-b", ["support", "billing"], DIFY_B)
        yield running, a, b


async def call(
    running: Running, method: str, path: str, headers: dict[str, str], *, json: Any = None, **kwargs: Any
) -> httpx.Response:
    return await running.client.request(method, API + path, headers=headers, json=json, **kwargs)


def _sqlite_files(tmp_path: Path) -> str:
    """The SQLite store's files (the database, its WAL), as text."""
    return b"".join(p.read_bytes() for p in sorted(tmp_path.glob("store.db*"))).decode("latin-1")


async def stored_text(kind: str, tmp_path: Path, redis_url: str | None) -> str:
    """Everything the store holds, as text: the SQLite files' bytes, or every value in the Redis database."""
    if kind == "sqlite":
        return _sqlite_files(tmp_path)
    import redis.asyncio

    assert redis_url is not None
    client = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    parts: list[str] = []
    try:
        async for key in client.scan_iter(count=1000):
            kind_of = await client.type(key)
            values: Any
            if kind_of == "string":
                values = [await client.get(key)]
            elif kind_of == "hash":
                values = [f"{k!s}={v!s}" for k, v in (await client.hgetall(key)).items()]
            elif kind_of == "list":
                values = await client.lrange(key, 0, -1)
            elif kind_of == "set":
                values = await client.smembers(key)
            else:
                values = await client.zrange(key, 0, -1) if kind_of == "zset" else []
            parts += [str(key), *(str(v) for v in values)]
    finally:
        await client.aclose()
    return "\n".join(parts)
