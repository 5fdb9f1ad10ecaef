"""Paged messages and the stream renderer over a recording sink, on a fake clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from endpoints.discord.messages import PagedMessages, StreamRenderer, TryLater
from endpoints.discord.rendering import EMPTY_ANSWER
from gateway.clock import FakeClock
from gateway.plugin import EditThrottle

pytestmark = pytest.mark.anyio


@dataclass
class Sink:
    refuse: int = 0  # the next N non-urgent calls raise TryLater
    calls: list[tuple[str, Any, str]] = field(default_factory=list)
    shown: dict[int, str] = field(default_factory=dict)

    def _check(self, wait: bool) -> None:
        if self.refuse and not wait:
            self.refuse -= 1
            raise TryLater(2.0)

    async def send(self, content: str, *, wait: bool) -> int:
        self._check(wait)
        handle = 100 + sum(1 for c in self.calls if c[0] == "send")
        self.shown[handle] = content
        self.calls.append(("send", handle, content))
        return handle

    async def edit(self, handle: Any, content: str, *, wait: bool) -> None:
        self._check(wait)
        self.shown[handle] = content
        self.calls.append(("edit", handle, content))

    async def delete(self, handle: Any, *, wait: bool) -> None:
        del self.shown[handle]
        self.calls.append(("delete", handle, ""))


async def test_existing_placeholders_are_edited_before_anything_is_sent() -> None:
    sink = Sink()
    pages = PagedMessages(sink, existing=["@original"])
    assert pages.shown == []
    await pages.render("x " * 1500, wait=True)
    assert [c[0:2] for c in sink.calls] == [("edit", "@original"), ("send", 100)]
    assert not await pages.render("x " * 1500, wait=True)  # nothing changed: nothing sent
    assert len(sink.calls) == 2
    await pages.render("short", wait=True)
    assert sink.calls[-2:] == [("edit", "@original", "short"), ("delete", 100, "")]
    assert pages.shown == ["short"]


async def test_the_renderer_paces_renders_and_always_finishes() -> None:
    clock = FakeClock()
    sink = Sink()
    renderer = StreamRenderer(PagedMessages(sink), EditThrottle(1.0, clock))
    assert not await renderer.update("   ")  # nothing to show yet
    assert await renderer.update("a")
    assert not await renderer.update("ab")  # within the interval
    clock.advance(1.0)
    assert await renderer.update("a ")  # shows the same: no edit, and the next may go at once
    assert await renderer.update("ab")
    clock.advance(0.5)
    assert not await renderer.update("abc")
    clock.advance(0.5)
    assert await renderer.update("abc")
    await renderer.finish("abcd")  # waits out the interval on the clock, then renders
    assert clock.monotonic() == 3.0
    assert [c[2] for c in sink.calls] == ["a", "ab", "abc", "abcd"]


async def test_a_refused_update_backs_off_and_the_final_render_waits() -> None:
    clock = FakeClock()
    sink = Sink(refuse=1)
    renderer = StreamRenderer(PagedMessages(sink), EditThrottle(0.5, clock))
    assert not await renderer.update("a")
    assert not sink.calls
    clock.advance(1.0)
    assert not await renderer.update("ab")  # still inside the 2 s backoff
    await renderer.finish("abc")
    assert clock.monotonic() == 2.0
    assert sink.calls == [("send", 100, "abc")]


async def test_an_empty_final_answer_says_so() -> None:
    sink = Sink()
    await StreamRenderer(PagedMessages(sink), EditThrottle(1.0, FakeClock())).finish(" ")
    assert list(sink.shown.values()) == [EMPTY_ANSWER]
