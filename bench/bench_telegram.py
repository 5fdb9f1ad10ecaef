"""Benchmark: the telegram plugin's verified acks per second vs the slack plugin's, in one run; and
the time from Dify's first token to the first write on the platform.

    python bench/bench_telegram.py [--duration 10] [--concurrency 50] [--store sqlite|redis] [--rounds 3]
                                   [--answers 10] [--profile stacks.txt]

1. Acks: one gateway process (job workers off) with a slack and a telegram endpoint; loads
   alternate between them, 50 concurrent keep-alive connections over loopback. Each Slack request
   is a distinct signed `app_mention` (v0 HMAC checked); each Telegram request a distinct private
   message (`update_id`) with the webhook's secret token (a constant-time compare), the bot's
   identity known (as after `telegram connect`). Both durably
   enqueue their answer job before answering 200 (`bench.plugin_acks`). The baseline, loaded
   first in each round with the same updates (`bench/baselines.py`; `python bench/baselines.py
   --install` once): aiogram 3's webhook, `SimpleRequestHandler` with the secret token on aiohttp's
   server (uvloop), a Dispatcher with a message handler that does nothing, nothing durable.
2. First token to first write: the gateway (workers on), the Dify simulator and the fake Telegram
   and Slack APIs in this process. Each answer is asked alone; the simulator's first token is
   timed as it leaves (an ASGI wrapper), the platform's first write after it as it arrives: a
   `sendMessageDraft` in a private chat, an `editMessageText` of the placeholder in a group, a
   `chat.update` of Slack's placeholder. Where a placeholder was posted (groups, Slack), the first
   edit may go `ChatRules.placeholder_lead` (1 s) after it, never sooner; a draft goes at once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import socket
import statistics
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_slack import BOT_TOKEN as SLACK_TOKEN, SIGNING_SECRET, serve_gateway, signed_event  # noqa: E402
from bench.plugin_acks import Baseline, add_arguments, compare_with_slack  # noqa: E402
from bench.servers import Scratch  # noqa: E402

TELEGRAM_TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
SECRET_TOKEN = "bench-secret-token"


# -- 1. acks ----------------------------------------------------------------------------------------


def telegram_update(counter: itertools.count[int]) -> tuple[bytes, dict[str, str]]:
    n = next(counter)
    person = {"id": 1000 + n % 50, "is_bot": False, "first_name": "Ana", "username": "ana"}
    body = json.dumps(
        {
            "update_id": 500_000_000 + n,
            "message": {
                "message_id": n + 1,
                "from": person,
                "chat": {"id": person["id"], "first_name": "Ana", "username": "ana", "type": "private"},
                "date": int(time.time()),
                "text": "how fast are you?",
            },
        }
    ).encode()
    return body, {"content-type": "application/json", "x-telegram-bot-api-secret-token": SECRET_TOKEN}


# -- 2. first token to first write -----------------------------------------------------------------


class FirstTokens:
    """An ASGI wrapper of the simulator: the time each answer's first token left it."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.times: list[float] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        seen = False

        async def timed(message: Any) -> None:
            nonlocal seen
            await send(message)
            if not seen and message["type"] == "http.response.body" and b'"answer"' in message.get("body", b""):
                seen = True
                self.times.append(time.monotonic())

        await self.app(scope, receive, timed)


@contextlib.asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task


async def first_writes(answers: int, workdir: Path) -> None:
    import httpx
    from pydantic import SecretStr

    from gateway.http.app import create_app
    from gateway.settings import Settings, bootstrap
    from gateway.simulator.app import create_simulator_app
    from gateway.simulator.config import SimulatorConfig
    from gateway.testing.platforms.slack import FakeSlack
    from gateway.testing.platforms.telegram import FakeTelegram, group_chat, message_update, user
    from gateway.testing.signing import slack_request, telegram_request

    simulator = FirstTokens(create_simulator_app(SimulatorConfig(first_token_latency=0.3, tokens_per_second=40)))
    telegram, slack = FakeTelegram(), FakeSlack(token=SLACK_TOKEN)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    public = f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()
    settings = bootstrap(
        Settings(
            store=f"sqlite:///{workdir / 'gw.db'}",
            admin_token=SecretStr("bench-admin-" + "x" * 32),
            secret_key=(SecretStr("bench-secret-" + "y" * 40),),
            public_url=public,
            rate_limit_per_minute=0,
            job_poll_interval=0.02,
        )
    ).settings
    admin = {"authorization": "Bearer bench-admin-" + "x" * 32}
    async with (
        serving(simulator) as sim_base,
        serving(telegram.app()) as telegram_base,
        serving(slack.app()) as slack_base,
        serving(create_app(settings)) as base,
        httpx.AsyncClient(timeout=30) as client,
    ):
        telegram.base, slack.base = telegram_base, slack_base
        app = {"name": "support", "base_url": f"{sim_base}/v1", "api_key": "app-simulator", "mode": "chat"}
        await client.post(f"{base}/admin/api/apps", json=app, headers=admin)

        async def endpoint(plugin: str, values: dict[str, Any]) -> str:
            body = {"plugin": plugin, "apps": ["support"], "settings": values}
            created = await client.post(f"{base}/admin/api/endpoints", json=body, headers=admin)
            url: str = created.json()["url"]
            return url.replace(public, base)

        tg_url = await endpoint(
            "telegram", {"bot_token": TELEGRAM_TOKEN, "secret_token": SECRET_TOKEN, "api_base_url": telegram_base}
        )
        slack_url = await endpoint(
            "slack",
            {"signing_secret": SIGNING_SECRET, "bot_token": SLACK_TOKEN, "api_base_url": slack.api_url},
        )

        async def measure(send: Any, writes: Any) -> list[float]:
            gaps = []
            for _ in range(answers):
                before = len(simulator.times)
                await send()
                while len(simulator.times) == before or not writes(simulator.times[-1]):
                    await asyncio.sleep(0.005)
                gaps.append(min(writes(simulator.times[-1])) - simulator.times[-1])
                await asyncio.sleep(1.0)  # let the answer finish before the next
            return gaps

        def after(calls: Callable[[], Sequence[Any]]) -> Any:
            return lambda t: [c.at for c in calls() if c.at >= t]

        ana, group = user(), group_chat()

        async def private() -> None:
            signed = telegram_request(SECRET_TOKEN, message_update("hello there", sender=ana))
            await client.post(tg_url, content=signed.body, headers=signed.headers)

        async def in_group() -> None:
            signed = telegram_request(SECRET_TOKEN, message_update("/ask hello there", sender=ana, chat=group))
            await client.post(tg_url, content=signed.body, headers=signed.headers)

        counter = itertools.count()

        async def mention() -> None:
            body, headers = signed_event(counter)
            del headers["x-slack-signature"]
            signed = slack_request(SIGNING_SECRET, body, timestamp=time.time())
            await client.post(slack_url, content=signed.body, headers=signed.headers)

        rows = {
            "telegram private (sendMessageDraft)": await measure(
                private, after(lambda: telegram.called("sendMessageDraft"))
            ),
            "telegram group (editMessageText)": await measure(
                in_group, after(lambda: telegram.called("editMessageText"))
            ),
            "slack thread (chat.update)": await measure(mention, after(lambda: slack.calls_to("chat.update"))),
        }
        print(f"\nfirst Dify token -> first platform write, {answers} answers each (median, max):")
        for name, gaps in rows.items():
            print(f"  {name:<38} {statistics.median(gaps) * 1000:7.1f} ms  {max(gaps) * 1000:7.1f} ms")
        base_median = statistics.median(rows["slack thread (chat.update)"])
        for name in list(rows)[:2]:
            print(f"  ratio {name} / slack: {statistics.median(rows[name]) / base_median:.3f}x")


def main() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    parser.add_argument("--answers", type=int, default=10)
    args = parser.parse_args()
    if args.serve is not None:
        return serve_gateway(args.serve)
    settings = {"bot_token": TELEGRAM_TOKEN, "secret_token": SECRET_TOKEN, "api_base_url": "http://127.0.0.1:9"}
    # The bot's identity as `telegram connect` (or the first answer) leaves it: the common case.
    seed = {f"bot:me:{TELEGRAM_TOKEN.partition(':')[0]}": json.dumps({"id": 123456789, "username": "bench_bot"})}
    baseline = Baseline("telegram", (TELEGRAM_TOKEN, SECRET_TOKEN), "aiogram webhook")
    compare_with_slack(
        Path(__file__).resolve(), "telegram", settings, telegram_update, args, seed=seed, baseline=baseline
    )
    if args.answers > 0:
        with Scratch("bench-telegram-ttfw-") as scratch:
            asyncio.run(first_writes(args.answers, scratch.dir))


if __name__ == "__main__":
    main()
