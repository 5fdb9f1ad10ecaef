"""Two gateway processes on one Redis; the one running a job is SIGKILLed; the job still completes, once."""

from __future__ import annotations

import asyncio
import os
import signal

import httpx
import pytest
from pydantic import SecretStr

from gateway.host.registry import PluginRegistry
from gateway.host.runtime import open_gateway
from gateway.settings import Settings
from tests.support.gateway import ADMIN_TOKEN, base_url, listening_socket
from tests.support.gateway_process import crashy
from tests.support.processes import gateway_env, start_gateway, stop, wait_healthy

pytestmark = [pytest.mark.anyio, pytest.mark.live, pytest.mark.redis]


async def test_sigkill_mid_job_then_another_replica_finishes_it_once(redis_db: str) -> None:
    socks = [listening_socket(), listening_socket()]
    env = gateway_env(
        GATEWAY_STORE=redis_db,
        GATEWAY_JOB_LEASE="1.5",
        GATEWAY_JOB_POLL_INTERVAL="0.1",
        GATEWAY_PUBLIC_URL=base_url(socks[0]),
    )
    settings = Settings.from_env(env).with_changes(admin_token=SecretStr(ADMIN_TOKEN))
    registry = PluginRegistry([crashy])
    gateway = await open_gateway(settings, registry=registry)
    procs = [start_gateway(env, sock, module="tests.support.gateway_process") for sock in socks]
    try:
        record, url = await gateway.endpoints.create("crashy", [], {})
        async with httpx.AsyncClient(timeout=10) as client:
            for proc, sock in zip(procs, socks, strict=True):
                await wait_healthy(client, base_url(sock), proc)
            accepted = await client.post(f"{url}/start", content=b"3")
            assert accepted.status_code == 202
            job_id = accepted.json()["job"]

        storage = (await gateway.contexts.build(record, crashy)).storage
        owner_pid = None
        for _ in range(200):
            job = await gateway.store.job_get(job_id)
            if job and job.state == "running" and await storage.get("started") == "1":
                owner_pid = int((job.lease_owner or "").split(":")[1])
                break
            await asyncio.sleep(0.02)
        assert owner_pid in {p.pid for p in procs}
        victim = next(p for p in procs if p.pid == owner_pid)
        survivor = next(p for p in procs if p.pid != owner_pid)
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()

        for _ in range(400):
            job = await gateway.store.job_get(job_id)
            if job and job.state == "done":
                break
            await asyncio.sleep(0.05)
        assert job is not None and job.state == "done", job
        assert job.result == {"pid": str(survivor.pid)}
        assert job.attempts == 2
        assert await storage.get("started") == "2"
        assert await storage.get("effects") == "1"
        assert await storage.get("effect") == str(survivor.pid)
    finally:
        for proc in procs:
            stop(proc)
        for sock in socks:
            sock.close()
        await gateway.aclose()
