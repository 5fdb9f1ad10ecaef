"""Fake platform Web APIs that record every call and answer like the platform: ASGI apps to
serve on a real uvicorn (`live_server`) or to mount in an httpx client (`httpx.ASGITransport`)."""

from gateway.testing.platforms.discord import FakeDiscord as FakeDiscord, patched_discord as patched_discord
from gateway.testing.platforms.lark import FakeLark as FakeLark
from gateway.testing.platforms.slack import FakeSlack as FakeSlack
from gateway.testing.platforms.telegram import FakeTelegram as FakeTelegram

__all__ = ["FakeDiscord", "FakeLark", "FakeSlack", "FakeTelegram", "patched_discord"]
