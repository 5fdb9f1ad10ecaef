"""The generic hooks `bots` plugs into: CLI commands and server services found through entry points."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any
from unittest.mock import MagicMock

import click
import pytest

import gateway.cli.main
import gateway.host.services
from gateway.host.services import SERVICES_GROUP, start_services, stop_services

pytestmark = pytest.mark.anyio


@dataclass
class Entry:
    name: str
    value: str
    loaded: Any = None
    error: Exception | None = None

    def load(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.loaded


def test_installed_entry_points_provide_the_bot_command_and_service() -> None:
    assert "bot" in {c.name for c in gateway.cli.main.extension_commands()}
    names = {e.name for e in entry_points(group=SERVICES_GROUP)}
    assert "discord-bots" in names


def test_broken_commands_are_skipped_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    good = click.Command("good")
    entries = [
        Entry("broken", "nowhere:cmd", error=ImportError("no module")),
        Entry("odd", "mod:not_a_command", loaded=42),
        Entry("good", "mod:good", loaded=good),
    ]
    monkeypatch.setattr(gateway.cli.main, "entry_points", lambda group: entries)
    assert gateway.cli.main.extension_commands() == [good]
    err = capsys.readouterr().err
    assert "'broken' (nowhere:cmd) did not load" in err and "mod:not_a_command is not a click command" in err


async def test_services_start_stop_and_never_take_the_server_down(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    started = asyncio.Event()

    async def forever() -> None:
        started.set()
        await asyncio.Event().wait()

    async def crash() -> None:
        raise RuntimeError("service crashed")

    def factory_raises(gw: Any) -> None:
        raise ValueError("bad config")

    entries = [
        Entry("broken", "x:y", error=ImportError("gone")),
        Entry("raises", "x:raises", loaded=factory_raises),
        Entry("idle", "x:idle", loaded=lambda gw: None),
        Entry("runs", "x:runs", loaded=lambda gw: forever()),
        Entry("crashes", "x:crashes", loaded=lambda gw: crash()),
    ]
    monkeypatch.setattr(gateway.host.services, "entry_points", lambda group: entries)
    with caplog.at_level(logging.ERROR, logger="gateway.host.services"):
        tasks = start_services(MagicMock())
        assert [t.get_name() for t in tasks] == ["service-runs", "service-crashes"]
        await started.wait()
        await asyncio.sleep(0)
        await stop_services(tasks)
        await stop_services([])
    messages = [r.getMessage() for r in caplog.records]
    assert any("'broken' (x:y) did not start" in m for m in messages)
    assert any("'raises' (x:raises) did not start" in m for m in messages)
    assert any("service-crashes stopped with an error" in m for m in messages)
    assert all(t.done() for t in tasks)
