"""A real gateway process for crash tests: `python -m tests.support.gateway_process --fd N`.

It is the production app (settings from GATEWAY_* variables, uvicorn, job workers) with one extra
test plugin, `crashy`, whose job is slow enough to be killed midway.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys

import uvicorn
from pydantic import BaseModel

from gateway.host.registry import PluginRegistry
from gateway.http.app import create_app
from gateway.plugin import Context, JobInfo, Permission, Plugin, Request, Response, unverified
from gateway.settings import Settings, bootstrap


class Empty(BaseModel):
    pass


crashy = Plugin("crashy", settings=Empty, verifier=unverified, permissions={Permission.JOBS, Permission.STORAGE})


@crashy.route("/start", methods=["POST"])
async def start(request: Request, ctx: Context) -> Response:
    job_id = await ctx.jobs.enqueue("work", {"seconds": float(request.text() or "3")}, key="only-once")
    return Response.json({"job": job_id}, status=202)


@crashy.job("work")
async def work(job: JobInfo, ctx: Context) -> dict[str, object]:
    pid = str(os.getpid())
    await ctx.storage.incr("started")
    await ctx.storage.set(f"started-by:{pid}", "1")
    await asyncio.sleep(job.payload["seconds"])
    # The side effect, keyed so a re-run after a crash can never apply it twice.
    if await ctx.storage.set_if_absent("effect", pid):
        await ctx.storage.incr("effects")
    return {"pid": pid}


def main() -> None:
    settings = bootstrap(Settings.from_env(os.environ)).settings
    registry = PluginRegistry.from_entry_points()
    registry.add(crashy)
    # The listening socket comes from the parent (`--fd N`, see tests/support/processes.py).
    sock = socket.socket(fileno=int(sys.argv[sys.argv.index("--fd") + 1]))
    app = create_app(settings, registry=registry)
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])


if __name__ == "__main__":
    main()
