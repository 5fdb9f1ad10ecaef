"""A bot runner process for lease tests: `python -m tests.support.bot_process ENDPOINT_ID OUTFILE`.

The production runner (`run_discord_bot`: the endpoint's bot token, its lease in the store from
GATEWAY_* variables, SIGTERM handling) with the Discord connection replaced by a stub that
appends this process's pid to OUTFILE when it "connects" and then stays connected.
"""

from __future__ import annotations

import asyncio
import os
import sys

from bots.cli import run_until_stopped
from bots.runner import run_discord_bot
from gateway.cli.common import service_host
from gateway.host.services import Host
from gateway.settings import Settings


def _record_connected() -> None:
    with open(sys.argv[2], "a") as out:
        out.write(f"{os.getpid()}\n")


async def stub_connect(host: Host, endpoint_id: str, token: str) -> None:
    _record_connected()
    await asyncio.Event().wait()


async def main() -> None:
    settings = Settings.from_env(os.environ)
    async with service_host(settings) as host:
        ttl = float(host.setting("test_lease_ttl") or "1.0")
        await run_discord_bot(host, sys.argv[1], lease_ttl=ttl, poll=0.1, connector=stub_connect)


if __name__ == "__main__":
    run_until_stopped(main())
