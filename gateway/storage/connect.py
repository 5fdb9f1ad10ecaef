"""`open_store`: the backend named by a store URL (`GATEWAY_STORE`), opened and checked."""

from __future__ import annotations

from gateway.clock import Clock
from gateway.exceptions import ConfigurationError
from gateway.storage.base import Store, redact_url

__all__ = ["open_store"]

_EXPECTED = "expected sqlite:///path/to/file.db, sqlite://:memory:, redis://host:port/db or rediss://host:port/db"


def _sqlite_path(url: str) -> str:
    rest = url[len("sqlite://") :]
    if rest == ":memory:":
        return rest
    # Everything after "sqlite:///" is the path: sqlite:///./gateway.db is relative,
    # sqlite:////var/lib/gateway.db is absolute, sqlite:///:memory: is in memory too.
    if not rest.startswith("/") or len(rest) == 1:
        raise ConfigurationError(f"Invalid SQLite store URL {redact_url(url)!r}: {_EXPECTED}.")
    return rest[1:]


async def open_store(url: str, *, clock: Clock, sqlite_inline_budget: float | None = None) -> Store:
    """Open the store named by `url`: SQLite (tables created) or Redis (checked with a PING).

    `sqlite_inline_budget`: SQLite commits new jobs on the event loop's thread while such commits
    average under this many seconds (`SQLiteStore.open`); None (the default here, so that a
    Redis gateway never loads the SQLite side): always on its store thread. The gateway passes
    its `GATEWAY_SQLITE_INLINE_COMMIT_MS`.

    Raises `ConfigurationError` for a URL it cannot use, `StoreError` when the store is unreachable.
    """
    scheme = url.partition("://")[0].lower()
    if scheme == "sqlite":
        # Imported here so a gateway on one backend never loads the other.
        from gateway.storage.sqlite import SQLiteStore

        return await SQLiteStore.open(_sqlite_path(url), clock=clock, inline_budget=sqlite_inline_budget)
    if scheme in ("redis", "rediss"):
        from gateway.storage.redis import RedisStore

        store = RedisStore.from_url(url, clock=clock)
        try:
            await store.ping()  # fail at startup, not on the first request
        except BaseException:
            await store.aclose()
            raise
        return store
    raise ConfigurationError(f"Unsupported store URL {redact_url(url)!r}: {_EXPECTED}.")
