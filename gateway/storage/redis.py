"""The Redis backend, for several gateway replicas sharing one store.

Every read-modify-write is one Redis command or one Lua script, so replicas never race. Layout
under the key prefix P (default "dgw:"):

    P kv:<key>            string (TTL via PX)          P log:<stream>     list, newest first
    P ctr:<counter>       hash field -> integer (TTL set when created)
    P doc:<collection>    hash key -> JSON             P job:<id>         hash, see below
    P jobs:queued         zset id by due_at            P jobs:leases      zset id by lease_until (running)
    P jobs:finished       zset id by updated_at        P jobs:created     zset id by created_at (all)
    P jobs:state:<state>  zset id by created_at        P jobs:keys        hash idempotency key -> id
    P jobs:kind:<kind>:queued / :leases                zsets like jobs:queued / jobs:leases, one kind

A job hash holds each `Job` field as JSON text, and each `meta` entry as field "m:<name>", so Lua
updates single fields without re-encoding JSON (Lua's cjson would round floats) and a meta merge is
one HSET. The scripts derive job keys from the prefix, so they suit a single Redis (or Sentinel),
not Redis Cluster.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Any, cast
from urllib.parse import urlsplit

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError, ResponseError, TimeoutError as RedisTimeoutError
from redis.typing import EncodableT

import gateway.storage._redis_lua as lua
from gateway.clock import Clock
from gateway.exceptions import ConfigurationError, StoreError
from gateway.storage._group_commit import GroupCommit
from gateway.storage.base import Job, JobState, json_dumps, json_loads_object, prepare_enqueue, redact_url

__all__ = ["RedisStore"]

_SCAN_BATCH = 500
_PURGE_BATCH = 500
_FLOAT_FIELDS = ("due_at", "created_at", "updated_at", "lease_until")


def _text(value: bytes | str) -> str:
    # Works whether or not the injected client was built with decode_responses=True.
    return value.decode() if isinstance(value, bytes) else value


def _ms(ttl: float) -> int:
    return max(1, round(ttl * 1000))  # Redis refuses a zero PX


def _glob_escape(text: str) -> str:
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


def _job_fields(job: Job) -> list[str]:
    data = job.to_dict()
    fields: list[str] = []
    for name, value in data.pop("meta").items():
        fields += ["m:" + name, json_dumps(value)]
    for name, value in data.items():
        fields += [name, json_dumps(value)]
    return fields


def _job_from_items(items: Iterable[tuple[bytes | str, bytes | str]]) -> Job:
    data: dict[str, Any] = {}
    meta: dict[str, Any] = {}
    for raw_name, raw_value in items:
        name = _text(raw_name)
        if name.startswith("m:"):
            meta[name[2:]] = json.loads(raw_value)
        else:
            data[name] = json.loads(raw_value)
    for name in _FLOAT_FIELDS:  # JSON keeps 0 and 0.0 apart; the Job fields are floats
        if data.get(name) is not None:
            data[name] = float(data[name])
    data["meta"] = meta
    return Job.from_dict(data)


def _job_from_flat(flat: list[bytes | str]) -> Job:
    return _job_from_items(zip(flat[::2], flat[1::2], strict=True))


class _Errors:
    """One store call's guard: lost connections become `StoreError` with a message free of
    credentials, and a cancellation of the calling task is never lost.

    redis-py can finish a command whose task was cancelled meanwhile and return its reply as if
    nothing happened (seen under load with redis-py 8). The cancellation request stays on the task
    but no `CancelledError` reaches it, so a loop around store calls (a job worker, a lease
    renewal) would go on after its task was told to stop, and a shutdown awaiting it would hang.
    Here the call ends in `CancelledError` whenever a cancellation was requested during it.
    """

    def __init__(self, where: str, password: str | None) -> None:
        self._where = where
        self._password = password
        self._task: asyncio.Task[Any] | None = None
        self._cancelling = 0

    def __enter__(self) -> None:
        self._task = asyncio.current_task()
        self._cancelling = self._task.cancelling() if self._task is not None else 0

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if isinstance(exc, asyncio.CancelledError):
            return
        if self._task is not None and self._task.cancelling() > self._cancelling:
            raise asyncio.CancelledError from exc  # requested during the call, swallowed below us
        if isinstance(exc, RedisConnectionError | RedisTimeoutError):
            detail = str(exc)
            if self._password:
                detail = detail.replace(self._password, "***")
            raise StoreError(f"Redis store unavailable at {self._where}: {detail}") from None


class RedisStore:
    """The `Store` contract over Redis, safe for several replicas sharing one server.

    `RedisStore(client, clock=..., prefix="dgw:")` takes ownership of `client` (an
    `redis.asyncio.Redis`) and closes it in `aclose`; `RedisStore.from_url(url, clock=...)` builds one.
    Key TTLs use Redis's own expiry; `clock` stamps job `created_at` / `updated_at`.
    """

    def __init__(self, client: Redis, *, clock: Clock, prefix: str = "dgw:") -> None:
        self._r = client
        self._clock = clock
        self._p = prefix
        kwargs = client.connection_pool.connection_kwargs
        where = kwargs.get("path") or f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}/{kwargs.get('db', 0)}"
        self._where, self._password = str(where), kwargs.get("password")
        # register_script loads nothing yet: each call runs EVALSHA and falls back to EVAL once.
        self._enqueue = client.register_script(lua.ENQUEUE)
        self._enqueues = GroupCommit.awaiting(self._enqueue_batch)
        self._claim = client.register_script(lua.CLAIM)
        self._claim_many = client.register_script(lua.CLAIM_MANY)
        self._transitions = client.register_script(lua.TRANSITIONS)
        self._moves = GroupCommit.awaiting(self._move_batch)
        self._update_meta = client.register_script(lua.UPDATE_META)
        self._purge = client.register_script(lua.PURGE)
        self._delete_if_equals = client.register_script(lua.DELETE_IF_EQUALS)
        self._expire_if_equals = client.register_script(lua.EXPIRE_IF_EQUALS)
        self._incr = client.register_script(lua.INCR)
        self._set_fenced = client.register_script(lua.SET_FENCED)
        self._counters_add_once = client.register_script(lua.COUNTERS_ADD_ONCE)

    @classmethod
    def from_url(cls, url: str, *, clock: Clock, prefix: str = "dgw:") -> RedisStore:
        """A store over a new client for `redis://` or `rediss://` `url` (connects lazily)."""
        try:
            db = urlsplit(url).path.strip("/")
            if db and not db.isdigit():  # redis-py would silently fall back to database 0
                raise ValueError("the path must be a database number")
            # URL query options (e.g. ?socket_timeout=30) override these defaults.
            client = Redis.from_url(
                url, decode_responses=True, socket_connect_timeout=5, socket_timeout=10, health_check_interval=30
            )
        except ValueError as exc:
            detail = str(exc)
            userinfo = url.partition("://")[2].rpartition("@")[0]
            for secret in {userinfo, userinfo.partition(":")[2]} - {""}:
                detail = detail.replace(secret, "***")  # the parser may quote parts of the URL
            raise ConfigurationError(f"Invalid Redis URL {redact_url(url)!r}: {detail}.") from None
        return cls(client, clock=clock, prefix=prefix)

    @property
    def _errors(self) -> _Errors:
        """A guard for one call (a fresh one each time: calls of many tasks run at once)."""
        return _Errors(self._where, self._password)

    # -- lifecycle -------------------------------------------------------------------------------
    async def ping(self) -> None:
        with self._errors:
            await self._r.ping()

    async def aclose(self) -> None:
        await self._enqueues.wait_idle()  # enqueues accepted before the close are written
        await self._moves.wait_idle()
        await self._r.aclose()

    # -- documents -------------------------------------------------------------------------------
    async def doc_get(self, collection: str, key: str) -> dict[str, Any] | None:
        with self._errors:
            raw = await self._r.hget(self._p + "doc:" + collection, key)
        return None if raw is None else json_loads_object(raw)

    async def doc_put(self, collection: str, key: str, doc: dict[str, Any]) -> None:
        with self._errors:
            await self._r.hset(self._p + "doc:" + collection, key, json_dumps(doc))

    async def doc_create(self, collection: str, key: str, doc: dict[str, Any]) -> bool:
        with self._errors:
            return bool(await self._r.hsetnx(self._p + "doc:" + collection, key, json_dumps(doc)))

    async def doc_delete(self, collection: str, key: str) -> bool:
        with self._errors:
            return bool(await self._r.hdel(self._p + "doc:" + collection, key))

    async def doc_list(self, collection: str) -> list[dict[str, Any]]:
        with self._errors:
            raw: dict[bytes | str, bytes | str] = await self._r.hgetall(self._p + "doc:" + collection)
        docs = sorted((_text(key), value) for key, value in raw.items())
        return [json_loads_object(value) for _, value in docs]

    # -- key-value -------------------------------------------------------------------------------
    async def kv_get(self, key: str) -> str | None:
        with self._errors:
            raw = await self._r.get(self._p + "kv:" + key)
        return None if raw is None else _text(raw)

    async def kv_set(self, key: str, value: str, *, ttl: float | None = None) -> None:
        with self._errors:
            await self._r.set(self._p + "kv:" + key, value, px=None if ttl is None else _ms(ttl))

    async def kv_set_if_absent(self, key: str, value: str, *, ttl: float | None = None) -> bool:
        with self._errors:
            return bool(await self._r.set(self._p + "kv:" + key, value, nx=True, px=None if ttl is None else _ms(ttl)))

    async def kv_delete(self, key: str) -> bool:
        with self._errors:
            return bool(await self._r.delete(self._p + "kv:" + key))

    async def kv_delete_if_equals(self, key: str, value: str) -> bool:
        with self._errors:
            return bool(await self._delete_if_equals(keys=[self._p + "kv:" + key], args=[value]))

    async def kv_expire_if_equals(self, key: str, value: str, ttl: float) -> bool:
        with self._errors:
            return bool(await self._expire_if_equals(keys=[self._p + "kv:" + key], args=[value, _ms(ttl)]))

    async def kv_set_fenced(
        self, key: str, value: str, *, job_id: str, owner: str, attempt: int, ttl: float | None = None
    ) -> bool:
        args: list[EncodableT] = [
            self._p,
            job_id,
            json_dumps(owner),
            attempt,
            self._p + "kv:" + key,
            value,
            "" if ttl is None else _ms(ttl),
        ]
        with self._errors:
            return bool(await self._set_fenced(args=args))

    async def kv_incr(self, key: str, amount: int = 1, *, ttl: float | None = None) -> int:
        try:
            with self._errors:
                value = await self._incr(keys=[self._p + "kv:" + key], args=[amount, "" if ttl is None else _ms(ttl)])
        except ResponseError as exc:
            if "not an integer" not in str(exc):
                raise
            raise ValueError(f"key {key!r} does not hold an integer") from exc
        return int(value)

    async def kv_delete_prefix(self, prefix: str) -> int:
        deleted = 0
        batch: list[bytes | str] = []
        with self._errors:
            # SCAN never blocks the server the way KEYS would; UNLINK frees memory off the main thread.
            async for name in self._r.scan_iter(match=_glob_escape(self._p + "kv:" + prefix) + "*", count=_SCAN_BATCH):
                batch.append(name)
                if len(batch) >= _SCAN_BATCH:
                    deleted += await self._r.unlink(*batch)
                    batch.clear()
            if batch:
                deleted += await self._r.unlink(*batch)
        return deleted

    # -- counters --------------------------------------------------------------------------------
    async def counters_add_once(
        self,
        marker: str,
        value: str,
        increments: Sequence[tuple[str, str, int]],
        *,
        marker_ttl: float | None = None,
        ttl: float | None = None,
    ) -> bool:
        args: list[EncodableT] = [
            value,
            "" if marker_ttl is None else _ms(marker_ttl),
            "" if ttl is None else _ms(ttl),
            self._p + "ctr:",
        ]
        for counter, name, amount in increments:
            args += [counter, name, int(amount)]
        with self._errors:
            return bool(await self._counters_add_once(keys=[self._p + "kv:" + marker], args=args))

    async def counters_get(self, counter: str) -> dict[str, int]:
        with self._errors:
            raw: dict[bytes | str, bytes | str] = await self._r.hgetall(self._p + "ctr:" + counter)
        return {_text(name): int(value) for name, value in raw.items()}

    # -- capped logs -----------------------------------------------------------------------------
    async def log_append(self, stream: str, entries: Sequence[dict[str, Any]], *, max_len: int) -> None:
        if max_len < 1:
            raise ValueError("max_len must be at least 1")
        if not entries:
            return
        name = self._p + "log:" + stream
        with self._errors:
            async with self._r.pipeline(transaction=True) as pipe:
                pipe.lpush(name, *(json_dumps(entry) for entry in entries))
                pipe.ltrim(name, 0, max_len - 1)
                await pipe.execute()

    async def log_list(self, stream: str, limit: int) -> list[dict[str, Any]]:
        if limit < 1:
            return []  # LRANGE 0 -1 would mean "everything"
        with self._errors:
            raw: list[bytes | str] = await self._r.lrange(self._p + "log:" + stream, 0, limit - 1)
        return [json_loads_object(item) for item in raw]

    async def log_delete(self, stream: str) -> None:
        with self._errors:
            await self._r.delete(self._p + "log:" + stream)

    # -- jobs ------------------------------------------------------------------------------------
    async def job_enqueue(self, job: Job) -> tuple[Job, bool]:
        # Group commit: enqueues arriving together go to Redis as one script call (one round trip).
        return await self._enqueues.submit(prepare_enqueue(job, self._clock.time()))

    async def _enqueue_batch(self, batch: Sequence[Job]) -> list[tuple[Job, bool] | Exception]:
        args: list[EncodableT] = [self._p]
        for new in batch:
            args += [new.id, new.key or "", new.created_at, new.due_at, new.kind, json_dumps(_job_fields(new))]
        with self._errors:
            replies = await self._enqueue(args=args)
        out: list[tuple[Job, bool] | Exception] = []
        for new, reply in zip(batch, replies, strict=True):
            if reply[0] == -1:
                out.append(ValueError(f"a job with id {new.id!r} already exists"))
            else:
                out.append((_job_from_flat(reply[1]), False) if reply[0] == 0 else (new, True))
        return out

    async def job_claim(
        self, owner: str, now: float, lease_s: float, *, job_id: str | None = None, kind: str | None = None
    ) -> Job | None:
        args = self._claim_args(owner, now, lease_s) + [job_id or "", kind or ""]
        with self._errors:
            reply = await self._claim(args=args)
        return _job_from_flat(reply) if reply else None

    async def job_claim_many(
        self, owner: str, now: float, lease_s: float, *, limit: int, kind: str | None = None
    ) -> list[Job]:
        if limit < 1:
            return []
        args = self._claim_args(owner, now, lease_s) + [limit, kind or ""]
        with self._errors:
            replies = await self._claim_many(args=args)
        return [_job_from_flat(reply) for reply in replies]

    def _claim_args(self, owner: str, now: float, lease_s: float) -> list[EncodableT]:
        lease_until = now + lease_s
        return [self._p, now, lease_until, json_dumps(owner), json_dumps(lease_until), json_dumps(now)]

    async def _move(
        self,
        job_id: str,
        guard: str,
        want: str,
        to: JobState,
        score: float,
        fields: dict[str, Any],
        attempt: int | None = None,
    ) -> bool:
        """Move the job to state `to` (indexed by `score`) and set `fields`, if the guard passes.

        Group commit: the moves of many runs ending together (outcomes, renewals) go to Redis as
        one script call, each checked and applied on its own, as if it had been sent alone."""
        pairs = [item for name, value in {"state": to, **fields}.items() for item in (name, json_dumps(value))]
        move = [job_id, guard, want, "" if attempt is None else str(attempt), to, repr(float(score)), *pairs]
        return await self._moves.submit(json_dumps(move))

    async def _move_batch(self, moves: Sequence[str]) -> list[bool]:
        with self._errors:
            replies = await self._transitions(args=[self._p, *moves])
        return [bool(reply) for reply in replies]

    async def job_extend(self, job_id: str, owner: str, lease_until: float, *, attempt: int | None = None) -> bool:
        now = self._clock.time()
        fields = {"lease_until": lease_until, "updated_at": now}
        return await self._move(job_id, "owner", json_dumps(owner), "running", lease_until, fields, attempt)

    async def job_complete(
        self, job_id: str, owner: str, result: dict[str, Any] | None = None, *, attempt: int | None = None
    ) -> bool:
        now = self._clock.time()
        fields = {"result": result, "lease_owner": None, "lease_until": None, "updated_at": now}
        return await self._move(job_id, "owner", json_dumps(owner), "done", now, fields, attempt)

    async def job_retry(
        self, job_id: str, owner: str, due_at: float, error: str, *, attempt: int | None = None
    ) -> bool:
        now = self._clock.time()
        fields = {"due_at": due_at, "last_error": error, "lease_owner": None, "lease_until": None, "updated_at": now}
        return await self._move(job_id, "owner", json_dumps(owner), "queued", due_at, fields, attempt)

    async def job_dead(self, job_id: str, owner: str | None, error: str, *, attempt: int | None = None) -> bool:
        now = self._clock.time()
        # Without an owner (an operator's decision) any job not yet done can be dead-lettered.
        guard, want = ("owner", json_dumps(owner)) if owner is not None else ("not_done", "")
        fields = {"last_error": error, "lease_owner": None, "lease_until": None, "updated_at": now}
        return await self._move(job_id, guard, want, "dead", now, fields, attempt)

    async def job_get(self, job_id: str) -> Job | None:
        with self._errors:
            raw: dict[bytes | str, bytes | str] = await self._r.hgetall(self._p + "job:" + job_id)
        return _job_from_items(raw.items()) if raw else None

    async def job_update_meta(self, job_id: str, meta: dict[str, Any]) -> bool:
        # Each meta entry is its own hash field, so the merge is one HSET; `updated_at` is left alone.
        pairs = [item for name, value in meta.items() for item in ("m:" + name, json_dumps(value))]
        with self._errors:
            return bool(await self._update_meta(args=[self._p, job_id, *pairs]))

    async def job_list(self, *, state: JobState | None = None, limit: int = 100) -> list[Job]:
        if limit < 1:
            return []
        index = self._p + ("jobs:created" if state is None else "jobs:state:" + state)
        with self._errors:
            ids = cast("list[bytes | str]", await self._r.zrevrange(index, 0, limit - 1))
            if not ids:
                return []
            async with self._r.pipeline(transaction=False) as pipe:
                for job_id in ids:
                    pipe.hgetall(self._p + "job:" + _text(job_id))
                hashes: list[dict[bytes | str, bytes | str]] = await pipe.execute()
        return [_job_from_items(raw.items()) for raw in hashes if raw]  # skip jobs purged meanwhile

    async def job_replay(self, job_id: str, now: float) -> bool:
        fields = {"attempts": 0, "due_at": now, "lease_owner": None, "lease_until": None, "updated_at": now}
        return await self._move(job_id, "state", "dead", "queued", now, fields)

    async def job_purge(self, before: float) -> int:
        total = 0
        with self._errors:
            while True:  # in batches, so one script never blocks the server for long
                count = int(await self._purge(args=[self._p, before, _PURGE_BATCH]))
                total += count
                if count < _PURGE_BATCH:
                    return total
