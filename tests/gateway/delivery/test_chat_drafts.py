"""The engine's drafts (a preview while the answer streams, posted at the end), pages rendered one
by one (markup whose tags can't be cut), and the repeating typing indicator."""

from __future__ import annotations

import html
from dataclasses import dataclass, field

import pytest

from gateway.delivery.chat import MemoryMessages, PostedMessage, StreamUnavailable, deliver, repeating
from tests.gateway.delivery.chat_fakes import FakeAnswer, FakeChat, VirtualClock, text

pytestmark = pytest.mark.anyio


@dataclass
class FakeDraft:
    chat: FakeChat
    refuse: bool = False
    previews: list[tuple[int, str, float]] = field(default_factory=list)

    async def show(self, text: str, page: int) -> None:
        if self.refuse:
            raise StreamUnavailable("drafts are not available to this bot")
        self.previews.append((page, text, self.chat.clock.monotonic()))


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


async def test_a_draft_previews_the_answer_and_one_message_is_posted_at_the_end(clock: VirtualClock) -> None:
    chat = FakeChat(clock).with_rules(limit=500, edit_interval=1.0, placeholder="…")
    draft = FakeDraft(chat)
    answer = FakeAnswer(clock, text(*[f"w{i} " for i in range(30)], delay=0.2))

    done = await deliver(answer, chat, clock=clock, posted=MemoryMessages(), draft=draft)

    assert [c.name for c in chat.calls] == ["post"]  # no placeholder, no edits: one message
    assert chat.shown() == ["".join(f"w{i} " for i in range(30)).strip()]
    assert len(draft.previews) >= 3 and {page for page, _, _ in draft.previews} == {0}
    gaps = [b[2] - a[2] for a, b in zip(draft.previews, draft.previews[1:], strict=False)]
    assert all(gap >= 1.0 - 1e-9 for gap in gaps)  # paced like edits
    assert done.messages == 1


async def test_finished_pages_are_posted_while_the_next_one_is_previewed(clock: VirtualClock) -> None:
    chat = FakeChat(clock).with_rules(limit=100, edit_interval=1.0)
    draft = FakeDraft(chat)
    chunks = [f"sentence number {i} here. " for i in range(20)]
    answer = FakeAnswer(clock, text(*chunks, delay=0.3))

    await deliver(answer, chat, clock=clock, posted=MemoryMessages(), draft=draft)

    posts = chat.named("post")
    assert len(posts) == len(chat.shown()) >= 4
    first_final = max(at for _, _, at in draft.previews)
    assert posts[0].at < first_final  # page 1 went out while later pages were still previews
    assert {page for page, _, _ in draft.previews} >= {0, 1, 2}
    assert chat.named("edit") == []
    assert " ".join(chat.shown()).split() == "".join(chunks).split()


async def test_refused_drafts_fall_back_to_posted_and_edited_messages(clock: VirtualClock) -> None:
    chat = FakeChat(clock).with_rules(limit=500, edit_interval=1.0)
    answer = FakeAnswer(clock, text(*[f"w{i} " for i in range(20)], delay=0.3))

    await deliver(answer, chat, clock=clock, posted=MemoryMessages(), draft=FakeDraft(chat, refuse=True))

    assert chat.named("post") and chat.named("edit")
    assert chat.shown() == ["".join(f"w{i} " for i in range(20)).strip()]


async def test_a_rerun_edits_the_posted_message_instead_of_drafting(clock: VirtualClock) -> None:
    chat = FakeChat(clock).with_rules(limit=500)
    chat.messages["m0"] = "half an answ"
    draft = FakeDraft(chat)

    await deliver(
        FakeAnswer(clock, text("the whole answer")),
        chat,
        clock=clock,
        posted=MemoryMessages([PostedMessage("m0")]),
        draft=draft,
    )

    assert draft.previews == [] and chat.named("post") == []
    assert chat.shown() == ["the whole answer"]


async def test_pages_rendered_one_by_one_never_cut_a_tag(clock: VirtualClock) -> None:
    def bold_html(markdown: str) -> str:
        return "<b>" + html.escape(markdown) + "</b>"

    chat = FakeChat(clock).with_rules(limit=100, render=bold_html, render_pages=True)
    long = " ".join(f"a<{i}>&" for i in range(60))

    await deliver(FakeAnswer(clock, text(long)), chat, clock=clock, posted=MemoryMessages())

    pages = chat.shown()
    assert len(pages) > 2
    assert all(p.startswith("<b>") and p.endswith("</b>") and p.count("<b>") == 1 for p in pages)
    assert " ".join(html.unescape(p[3:-4]) for p in pages) == long


async def test_the_typing_indicator_repeats_until_the_block_ends(clock: VirtualClock) -> None:
    sent: list[float] = []

    async def send() -> None:
        sent.append(clock.monotonic())

    async with repeating(send, every=4.0, clock=clock):
        for _ in range(13):
            await clock.sleep(1.0)
    after = len(sent)
    for _ in range(10):
        await clock.sleep(1.0)

    assert sent == [0.0, 4.0, 8.0, 12.0] and len(sent) == after


async def test_a_failing_typing_indicator_stops_without_failing_the_block(clock: VirtualClock) -> None:
    calls = 0

    async def send() -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("refused")

    async with repeating(send, every=1.0, clock=clock):
        await clock.sleep(5.0)
    assert calls == 1
