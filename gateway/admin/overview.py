"""The overview the console draws: health, traffic per minute, answers in flight, jobs waiting.

Traffic comes from the per-endpoint request logs (shared by every replica), so it covers the last
`GATEWAY_REQUEST_LOG_SIZE` requests of each endpoint within the window; answers in flight are
this process's.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from gateway.admin import usecases
from gateway.host.runtime import Gateway

__all__ = ["JOB_COUNT_LIMIT", "MINUTES", "overview"]

MINUTES = 30
JOB_COUNT_LIMIT = 1000


async def overview(gw: Gateway, *, workspace: str, operator: bool) -> dict[str, Any]:
    """The overview of `workspace`: its endpoints' traffic and jobs (answers in flight are the process's)."""
    now = gw.clock.time()
    first = (math.floor(now / 60) - MINUTES + 1) * 60
    minutes = [first + 60 * i for i in range(MINUTES)]
    requests, errors = [0] * MINUTES, [0] * MINUTES
    per_endpoint: dict[str, list[int]] = {}
    for record in await gw.endpoints.all(workspace):
        counts = per_endpoint[record.id] = [0] * MINUTES
        for entry in await gw.requests.list(record.id, gw.settings.request_log_size):
            slot = math.floor((float(entry["time"]) - first) / 60)
            if 0 <= slot < MINUTES:
                counts[slot] += 1
                requests[slot] += 1
                errors[slot] += int(entry["status"]) >= 400
    try:
        await asyncio.wait_for(gw.store.ping(), timeout=2.0)
        store_ok = True
    except Exception:
        store_ok = False
    jobs = {
        state: len(
            await usecases.list_jobs(
                store=gw.store,
                endpoints=gw.endpoints,
                workspace=workspace,
                operator=operator,
                state=state,
                limit=JOB_COUNT_LIMIT,
            )
        )
        for state in ("queued", "running", "dead")
    }
    admission = gw.contexts.dify.admission
    return {
        "store_ok": store_ok,
        "answers": {"running": admission.running, "waiting": admission.waiting, "limit": admission.limit},
        "jobs": jobs,
        "minutes": minutes,
        "requests": requests,
        "errors": errors,
        "endpoints": per_endpoint,
    }
