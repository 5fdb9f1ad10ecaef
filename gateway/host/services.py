"""Background services that other packages run inside the server (`dify_gateway.services` entry points).

A service is a factory `factory(gateway) -> Awaitable[None] | None`, called once the gateway is
open; what it returns runs beside the job workers until shutdown, and None means there is
nothing to run (e.g. not configured). This is how `bots` runs Discord bots inside `serve`
without the gateway importing it. A service that fails to load or crashes is logged and never
takes the server down.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from importlib.metadata import entry_points

from gateway.host.runtime import Gateway

__all__ = ["SERVICES_GROUP", "ServiceFactory", "start_services", "stop_services"]

logger = logging.getLogger(__name__)

SERVICES_GROUP = "dify_gateway.services"
ServiceFactory = Callable[[Gateway], "Awaitable[None] | None"]


def _log_end(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("service %s stopped with an error", task.get_name(), exc_info=task.exception())


def start_services(gateway: Gateway) -> list[asyncio.Task[None]]:
    """Start every installed service that has work here; the running tasks."""
    tasks: list[asyncio.Task[None]] = []
    for entry in entry_points(group=SERVICES_GROUP):
        try:
            factory: ServiceFactory = entry.load()
            work = factory(gateway)
        except Exception:
            logger.exception("service %r (%s) did not start", entry.name, entry.value)
            continue
        if work is not None:
            task: asyncio.Task[None] = asyncio.ensure_future(work)
            task.set_name(f"service-{entry.name}")
            task.add_done_callback(_log_end)
            tasks.append(task)
    return tasks


async def stop_services(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel the services and wait until they have cleaned up."""
    for task in tasks:
        task.cancel()
    if tasks:
        # wait() rather than awaiting each task: a cancellation of the caller must not be swallowed.
        await asyncio.wait(tasks)
