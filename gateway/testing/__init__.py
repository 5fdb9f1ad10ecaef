"""The plugin test kit: test a plugin without a gateway, or against a real one.

- `FakeContext(plugin, settings)`: the plugin `Context` in memory (storage, jobs, callbacks,
  clock), apps answered by the Dify simulator, permissions enforced; `ctx.dispatch(request)`
  routes a request like the gateway (`dispatch`);
- signed requests for every scheme the gateway verifies: `slack_request`, `discord_request`
  (with a `DiscordKeyPair`), `webhook_request` (Standard Webhooks), `openai_request`; and
  `make_request` for any other;
- `VirtualClock`, `MemoryStorage`, `FakeJobs`, `SimulatedApps`, `RecordedCallbacks`: the
  context's parts, usable on their own;
- `running_simulator(config)` and the pytest fixture `dify_simulator` (from the `pytest11`
  entry point: installing dify-gateway is enough);
- `FakeSlack`, `FakeDiscord`, `FakeTelegram`: fake platform Web APIs that record every call
  (`telegram_request` and `gateway.testing.platforms.telegram.message_update` build Telegram's updates).
- `FakeLark`: a fake Lark / Feishu Open API (tokens, replies, CardKit), and `lark_event` to
  encrypt and sign events as Lark sends them (`lark_message_event`, `lark_url_verification`).

Production code never imports this package (an architecture test says so). Names load on first
use, so importing the package (as pytest does for the fixtures) loads nothing else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.lazy import lazy_exports

if TYPE_CHECKING:
    from gateway.testing.apps import AppCall as AppCall, SimulatedApps as SimulatedApps
    from gateway.testing.callbacks import RecordedCallbacks as RecordedCallbacks, SentCallback as SentCallback
    from gateway.testing.clock import VirtualClock as VirtualClock
    from gateway.testing.context import FakeContext as FakeContext
    from gateway.testing.jobs import (
        FakeJobRun as FakeJobRun,
        FakeJobs as FakeJobs,
        FakeLease as FakeLease,
        RecordedJob as RecordedJob,
    )
    from gateway.testing.platforms.discord import FakeDiscord as FakeDiscord, patched_discord as patched_discord
    from gateway.testing.platforms.lark import (
        FakeLark as FakeLark,
        lark_event as lark_event,
        lark_message_event as lark_message_event,
        lark_url_verification as lark_url_verification,
    )
    from gateway.testing.platforms.slack import FakeSlack as FakeSlack
    from gateway.testing.platforms.telegram import FakeTelegram as FakeTelegram
    from gateway.testing.requests import dispatch as dispatch, make_request as make_request
    from gateway.testing.signing import (
        DiscordKeyPair as DiscordKeyPair,
        Signed as Signed,
        discord_request as discord_request,
        openai_request as openai_request,
        slack_request as slack_request,
        telegram_request as telegram_request,
        webhook_request as webhook_request,
    )
    from gateway.testing.simulator import (
        FAST as FAST,
        RunningSimulator as RunningSimulator,
        running_simulator as running_simulator,
        serving as serving,
    )
    from gateway.testing.storage import MemoryStorage as MemoryStorage

_WHERE = {
    "AppCall": "apps",
    "DiscordKeyPair": "signing",
    "FAST": "simulator",
    "FakeContext": "context",
    "FakeDiscord": "platforms.discord",
    "FakeJobRun": "jobs",
    "FakeJobs": "jobs",
    "FakeLark": "platforms.lark",
    "FakeLease": "jobs",
    "FakeSlack": "platforms.slack",
    "FakeTelegram": "platforms.telegram",
    "MemoryStorage": "storage",
    "RecordedCallbacks": "callbacks",
    "RecordedJob": "jobs",
    "RunningSimulator": "simulator",
    "SentCallback": "callbacks",
    "Signed": "signing",
    "SimulatedApps": "apps",
    "VirtualClock": "clock",
    "discord_request": "signing",
    "dispatch": "requests",
    "lark_event": "platforms.lark",
    "lark_message_event": "platforms.lark",
    "lark_url_verification": "platforms.lark",
    "make_request": "requests",
    "openai_request": "signing",
    "patched_discord": "platforms.discord",
    "running_simulator": "simulator",
    "serving": "simulator",
    "slack_request": "signing",
    "telegram_request": "signing",
    "webhook_request": "signing",
}

__all__ = sorted(_WHERE)

__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
