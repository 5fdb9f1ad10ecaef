"""`open_store`: which URLs open which backend, and errors that never show a password."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.clock import FakeClock
from gateway.exceptions import ConfigurationError, StoreError
from gateway.storage import open_store
from gateway.storage.base import redact_url
from gateway.storage.redis import RedisStore
from gateway.storage.sqlite import SQLiteStore
from tests.support.gateway import refused_port

pytestmark = pytest.mark.anyio

SECRET = "s3cr3t-pa55"


async def test_sqlite_relative_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = await open_store("sqlite:///./gateway.db", clock=FakeClock())
    try:
        assert isinstance(store, SQLiteStore)
        await store.kv_set("k", "v")
    finally:
        await store.aclose()
    assert (tmp_path / "gateway.db").exists()


async def test_sqlite_absolute_path(tmp_path: Path) -> None:
    path = tmp_path / "abs.db"
    assert str(path).startswith("/")
    store = await open_store(f"sqlite:///{path}", clock=FakeClock())  # i.e. sqlite:////tmp/...
    await store.aclose()
    assert path.exists()


@pytest.mark.parametrize("url", ["sqlite://:memory:", "sqlite:///:memory:"])
async def test_sqlite_memory(url: str) -> None:
    store = await open_store(url, clock=FakeClock())
    try:
        assert isinstance(store, SQLiteStore)
        await store.doc_put("c", "k", {"v": 1})
        assert await store.doc_get("c", "k") == {"v": 1}
    finally:
        await store.aclose()


@pytest.mark.redis
async def test_redis_url(redis_url: str) -> None:
    store = await open_store(redis_url, clock=FakeClock())
    try:
        assert isinstance(store, RedisStore)
        await store.ping()
    finally:
        await store.aclose()


@pytest.mark.parametrize(
    "url",
    [
        "",
        "gateway.db",
        "postgres://user:" + SECRET + "@db/gw",
        "mysql://" + SECRET + "@db/gw",
        "sqlite:///",
        "sqlite://relative.db",
        "redis://user:" + SECRET + "@localhost:notaport/0",
        "redis://:" + SECRET + "@localhost:6379/notadb",
    ],
)
async def test_bad_urls_raise_configuration_error_without_password(url: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        await open_store(url, clock=FakeClock())
    assert SECRET not in str(info.value)
    assert "expected" in str(info.value) or "Invalid Redis URL" in str(info.value)


async def test_unreachable_redis_raises_store_error_without_password() -> None:
    with refused_port() as port, pytest.raises(StoreError) as info:
        await open_store(f"redis://user:{SECRET}@127.0.0.1:{port}/0", clock=FakeClock())
    assert SECRET not in str(info.value)
    assert "127.0.0.1" in str(info.value)


async def test_redis_store_wraps_lost_connections() -> None:
    with refused_port() as port:
        store = RedisStore.from_url(f"redis://:{SECRET}@127.0.0.1:{port}/0", clock=FakeClock())
        try:
            with pytest.raises(StoreError) as info:
                await store.kv_get("k")
            assert SECRET not in str(info.value)
        finally:
            await store.aclose()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://:pw@host:6379/0", "redis://:***@host:6379/0"),
        ("redis://user:p@ss@host/0", "redis://user:***@host/0"),
        ("rediss://token@host", "rediss://***@host"),
        ("redis://host:6379/0", "redis://host:6379/0"),
        ("sqlite:///./gateway.db", "sqlite:///./gateway.db"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected
