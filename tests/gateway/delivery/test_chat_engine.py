"""The chat-delivery engine's behaviour, once for every platform: a fake platform, a scripted
answer, and a virtual clock (nothing sleeps; times are read from the clock the engine waits on)."""

from __future__ import annotations

import pytest

from gateway.delivery.chat import (
    Handover,
    MemoryMessages,
    PostedMessage,
    StoredMessages,
    deliver,
)
from gateway.dify.models import Delta
from gateway.exceptions import Overloaded, RateLimited, UpstreamError
from gateway.testing import MemoryStorage
from tests.gateway.delivery.chat_fakes import FakeAnswer, FakeChat, FakeNative, FakeResumable, VirtualClock, text

pytestmark = pytest.mark.anyio

FENCE = "```"


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


def words(count: int, word: str = "word") -> list[str]:
    return [f"{word}{i} " for i in range(count)]


# -- pacing -----------------------------------------------------------------------------------------


async def test_a_fast_stream_is_shown_with_one_write_per_interval(clock: VirtualClock) -> None:
    chat = FakeChat(clock).with_rules(limit=2000, edit_interval=1.0)
    chunks = words(40)
    answer = FakeAnswer(clock, text(*chunks, delay=0.1))

    done = await deliver(answer, chat, clock=clock, posted=MemoryMessages())

    writes = chat.named("post", "edit")
    assert len(writes) < len(chunks) // 3  # 40 deltas over ~4 s: a handful of writes, not 40
    gaps = [b.at - a.at for a, b in zip(writes, writes[1:], strict=False)]
    assert all(gap >= 1.0 - 1e-9 for gap in gaps), gaps
    assert chat.shown() == ["".join(chunks).strip()]
    assert done.messages == 1 and done.failure is None


async def test_the_final_text_always_lands_even_inside_the_interval(clock: VirtualClock) -> None:
    chat = FakeChat(clock).with_rules(edit_interval=5.0)
    answer = FakeAnswer(clock, [(0.0, Delta("text", "Hello")), (0.5, Delta("text", ", world."))])

    await deliver(answer, chat, clock=clock, posted=MemoryMessages())

    post, edit = chat.named("post", "edit")
    assert (post.text, edit.text) == ("Hello", "Hello, world.")
    assert edit.at - post.at >= 5.0  # the final write waited for the throttle rather than skipping
    assert chat.shown() == ["Hello, world."]


async def test_a_pause_in_the_answer_does_not_hold_back_what_arrived(clock: VirtualClock) -> None:
    chat = FakeChat(clock).with_rules(edit_interval=1.0)
    steps = [(0.0, Delta("text", "one")), (0.2, Delta("text", " two")), (30.0, Delta("text", " three"))]

    await deliver(FakeAnswer(clock, steps), chat, clock=clock, posted=MemoryMessages())

    shown_before_three = [c.text for c in chat.named("post", "edit") if c.at < 30.0]
    assert shown_before_three[-1] == "one two"
    assert chat.shown() == ["one two three"]


async def test_a_typing_indicator_shows_until_the_first_words(clock: VirtualClock) -> None:
    chat = FakeChat(clock, has_typing=True)

    await deliver(FakeAnswer(clock, text("Hi", " there", delay=2.0)), chat, clock=clock, posted=MemoryMessages())

    assert chat.typing_log == ["start@0", "stop@1"]  # stopped right after the first write
    assert chat.shown() == ["Hi there"]


# -- deltas -------------------------------------------------------------------------------------------


async def test_a_replace_event_replaces_the_text_and_drops_pages_no_longer_needed(clock: VirtualClock) -> None:
    chat = FakeChat(clock).with_rules(limit=200, edit_interval=1.0)
    long = "".join(words(60))  # three pages at 200
    steps = [(0.0, Delta("text", long)), (2.0, Delta("replace", "Sorry, I can't answer that."))]

    done = await deliver(FakeAnswer(clock, steps), chat, clock=clock, posted=MemoryMessages())

    assert len(chat.named("post")) >= 3
    assert chat.shown() == ["Sorry, I can't answer that."]
    assert done.messages == 1 and done.text == "Sorry, I can't answer that."


async def test_deltas_that_are_not_text_do_not_show(clock: VirtualClock) -> None:
    chat = FakeChat(clock)
    steps = [(0.0, Delta("ping")), (0.0, Delta("reasoning", "hmm")), (0.0, Delta("text", "Answer."))]

    await deliver(FakeAnswer(clock, steps), chat, clock=clock, posted=MemoryMessages())

    assert chat.shown() == ["Answer."]
    assert all("hmm" not in c.text for c in chat.calls)


async def test_an_empty_answer_says_so(clock: VirtualClock) -> None:
    chat = FakeChat(clock).with_rules(empty_text="(nothing)")

    done = await deliver(FakeAnswer(clock, [(0.0, Delta("ping"))]), chat, clock=clock, posted=MemoryMessages())

    assert chat.shown() == ["(nothing)"]
    assert done.text == "(nothing)" and done.messages == 1


# -- paging -------------------------------------------------------------------------------------------


async def test_long_answers_are_paged_at_the_limit_with_code_blocks_closed_and_reopened(clock: VirtualClock) -> None:
    chat = FakeChat(clock).with_rules(limit=200)
    code = "\n".join(f"print('line {i}')" for i in range(40))
    answer_text = f"Here you go:\n\n{FENCE}python\n{code}\n{FENCE}\n\nDone."
    chunks = [answer_text[i : i + 37] for i in range(0, len(answer_text), 37)]

    await deliver(FakeAnswer(clock, text(*chunks, delay=0.3)), chat, clock=clock, posted=MemoryMessages())

    pages = chat.shown()
    assert len(pages) >= 3
    assert all(len(page) <= 200 for page in pages)
    assert all(page.count(FENCE) % 2 == 0 for page in pages)  # every message renders on its own
    assert all(page.startswith(f"{FENCE}python\n") for page in pages[1:-1])
    assert pages[-1].endswith("Done.")
    shown_lines = [line for page in pages for line in page.splitlines() if line.startswith("print")]
    assert shown_lines == code.splitlines()  # nothing lost, nothing repeated


async def test_only_the_last_page_is_edited_while_the_answer_grows(clock: VirtualClock) -> None:
    chat = FakeChat(clock).with_rules(limit=200)

    await deliver(FakeAnswer(clock, text(*words(120), delay=0.25)), chat, clock=clock, posted=MemoryMessages())

    posts = chat.named("post")
    assert len(posts) >= 4
    for earlier, later in zip(posts, posts[1:], strict=False):
        late_edits = [c for c in chat.named("edit") if c.ref == earlier.ref and c.at > later.at]
        assert late_edits == [], f"{earlier.ref} edited after {later.ref} was posted"


# -- rate limits --------------------------------------------------------------------------------------


async def test_retry_after_is_waited_on_the_clock_and_the_same_write_made_again(clock: VirtualClock) -> None:
    chat = FakeChat(clock)
    answer = FakeAnswer(clock, [(0.0, Delta("text", "Hello"))])
    chat.rate_limits = [7.0]
    start = clock.monotonic()

    await deliver(answer, chat, clock=clock, posted=MemoryMessages())

    (post,) = chat.named("post")
    assert post.text == "Hello" and post.at - start >= 7.0
    assert chat.shown() == ["Hello"]


async def test_a_write_that_stays_rate_limited_gives_up(clock: VirtualClock) -> None:
    chat = FakeChat(clock).with_rules(rate_limit_attempts=3)
    chat.rate_limits = [1.0, 1.0, 1.0]
    answer = FakeAnswer(clock, [(0.0, Delta("text", "Hello"))])

    with pytest.raises(RateLimited):
        await deliver(answer, chat, clock=clock, posted=MemoryMessages())

    assert chat.calls == [] and answer.closed  # leaving the stream stops the Dify task


# -- reruns -------------------------------------------------------------------------------------------


async def test_a_rerun_edits_the_messages_it_posted_instead_of_posting_again(clock: VirtualClock) -> None:
    chat = FakeChat(clock).with_rules(limit=200)
    posted = MemoryMessages()
    long = "".join(words(50))
    await deliver(FakeAnswer(clock, text(long[:150], long[150:])), chat, clock=clock, posted=posted)
    first_run = chat.shown()
    assert len(first_run) == 2 and [m.ref for m in posted.messages] == ["m1", "m2"]
    chat.calls.clear()

    await deliver(FakeAnswer(clock, text(*words(50), delay=0.2)), chat, clock=clock, posted=posted)

    assert chat.named("post") == []
    assert {c.ref for c in chat.named("edit")} <= {"m1", "m2"}
    assert chat.shown() == first_run


async def test_a_shorter_rerun_removes_what_is_no_longer_needed_at_the_end(clock: VirtualClock) -> None:
    chat = FakeChat(clock)
    chat.messages = {"m1": "old page 1", "m2": "old page 2", "s1": "half a stream"}
    posted = MemoryMessages([PostedMessage("m1"), PostedMessage("m2"), PostedMessage("s1", "stream")])

    await deliver(FakeAnswer(clock, text("Short", " answer.", delay=1.5)), chat, clock=clock, posted=posted)

    assert chat.named("post") == []
    assert chat.messages == {"m1": "Short answer."}
    assert posted.messages == [PostedMessage("m1")]
    deleted = [c.ref for c in chat.named("delete")]
    assert deleted == ["s1", "m2"]  # a stream can't be resumed (at once); m2 only once the answer ended


async def test_the_record_survives_in_job_storage(clock: VirtualClock) -> None:
    storage = MemoryStorage(clock)
    chat = FakeChat(clock).with_rules(limit=200)
    await deliver(
        FakeAnswer(clock, text("".join(words(50)))),
        chat,
        clock=clock,
        posted=StoredMessages(storage, "posted:job1", ttl=60.0),
    )

    assert await StoredMessages(storage, "posted:job1").load() == [PostedMessage("m1"), PostedMessage("m2")]
    assert storage.ttl("posted:job1") == 60.0
    await storage.set("posted:job2", "{not json")
    assert await StoredMessages(storage, "posted:job2").load() == []


async def test_the_record_is_written_fenced_by_the_runs_lease(clock: VirtualClock) -> None:
    class Lost(Exception):
        pass

    class Storage:
        """Refuses a write fenced by a lease other than the job's current one (as `kv_set_fenced`)."""

        def __init__(self) -> None:
            self.data: dict[str, str] = {}
            self.current = "run-1"

        async def get(self, key: str) -> str | None:
            return self.data.get(key)

        async def set(self, key: str, value: str, *, ttl: float | None = None, fence: str | None = None) -> None:
            if fence != self.current:
                raise Lost(fence)
            self.data[key] = value

    storage = Storage()
    await deliver(
        FakeAnswer(clock, text("hello")),
        FakeChat(clock).with_rules(limit=200),
        clock=clock,
        posted=StoredMessages(storage, "out:job1", fence="run-1"),
    )
    assert await StoredMessages(storage, "out:job1").load() == [PostedMessage("m1")]

    storage.current = "run-2"  # another run took the job over
    chat = FakeChat(clock).with_rules(limit=200)
    with pytest.raises(Lost):
        await deliver(
            FakeAnswer(clock, text("hello")),
            chat,
            clock=clock,
            posted=StoredMessages(storage, "out:job2", fence="run-1"),
        )
    assert "out:job2" not in storage.data


# -- failures -----------------------------------------------------------------------------------------


async def test_a_failure_note_follows_a_partial_answer(clock: VirtualClock) -> None:
    chat = FakeChat(clock).with_rules(failure_note=lambda exc, partial: f"[{'cut' if partial else 'none'}: {exc.code}]")
    failure = UpstreamError("Dify broke", upstream_code="internal")
    answer = FakeAnswer(clock, text("The answer is", delay=0.5), fail=failure)

    done = await deliver(answer, chat, clock=clock, posted=MemoryMessages())

    assert chat.shown() == ["The answer is\n\n[cut: upstream_error]"]
    assert done.failure is failure and done.answer is None


async def test_a_failure_before_any_text_shows_the_note_alone(clock: VirtualClock) -> None:
    chat = FakeChat(clock)

    done = await deliver(
        FakeAnswer(clock, fail_on_open=UpstreamError("down", upstream_code="circuit")),
        chat,
        clock=clock,
        posted=MemoryMessages(),
    )

    (post,) = chat.named("post")
    assert "circuit" in post.text and "try again" in post.text
    assert chat.shown() == [post.text] and done.failure is not None


async def test_the_failure_note_replaces_the_placeholder(clock: VirtualClock) -> None:
    chat = FakeChat(clock).with_rules(placeholder="…thinking", failure_note=lambda exc, partial: "failed")

    await deliver(FakeAnswer(clock, fail=UpstreamError("x")), chat, clock=clock, posted=MemoryMessages())

    assert [(c.name, c.text) for c in chat.calls] == [("post", "…thinking"), ("edit", "failed")]


async def test_an_overloaded_gateway_is_no_failure_of_the_answer_it_goes_to_the_caller(
    clock: VirtualClock,
) -> None:
    # The gateway's own shortage: a job runs again after Retry-After, a bot asks again; no note.
    chat = FakeChat(clock).with_rules(placeholder="…thinking")
    full = Overloaded("no answer place came free", retry_after=5.0)

    with pytest.raises(Overloaded):
        await deliver(FakeAnswer(clock, fail_on_open=full), chat, clock=clock, posted=MemoryMessages())

    assert [(c.name, c.text) for c in chat.calls] == [("post", "…thinking")]  # a rerun edits it


async def test_an_overloaded_gateway_is_not_a_failure_note_but_goes_up(clock: VirtualClock) -> None:
    # The gateway is full: the runtime runs the job again after Retry-After, and that run edits
    # the placeholder this one posted.
    chat = FakeChat(clock).with_rules(placeholder="…thinking")
    posted = MemoryMessages()

    with pytest.raises(Overloaded):
        await deliver(FakeAnswer(clock, fail_on_open=Overloaded("full")), chat, clock=clock, posted=posted)

    assert [(c.name, c.text) for c in chat.calls] == [("post", "…thinking")]
    assert posted.messages == [PostedMessage("m1")]


# -- fencing ------------------------------------------------------------------------------------------


class Stale(Exception):
    pass


async def test_a_fence_that_raises_stops_every_write(clock: VirtualClock) -> None:
    chat = FakeChat(clock).with_rules(limit=200)
    allowed = 2

    async def fence() -> None:
        nonlocal allowed
        if allowed == 0:
            raise Stale("another run owns the job")
        allowed -= 1

    answer = FakeAnswer(clock, text(*words(80), delay=0.3))
    with pytest.raises(Stale):
        await deliver(answer, chat, clock=clock, posted=MemoryMessages(), fence=fence)

    assert len(chat.calls) == 2
    assert answer.closed and answer.read < 80  # the answer was left: the Dify task stops


async def test_a_stale_run_writes_nothing_at_all(clock: VirtualClock) -> None:
    chat = FakeChat(clock, has_typing=True).with_rules(placeholder="…")

    async def fence() -> None:
        raise Stale

    answer = FakeAnswer(clock, text("hi"))
    with pytest.raises(Stale):
        await deliver(answer, chat, clock=clock, posted=MemoryMessages(), fence=fence)

    assert chat.calls == [] and chat.typing_log == [] and not answer.opened


# -- native streaming ---------------------------------------------------------------------------------


async def test_native_streaming_appends_only_new_text(clock: VirtualClock) -> None:
    chat = FakeChat(clock)
    chat.native = FakeNative(chat, limit=500)
    chunks = words(30)

    done = await deliver(FakeAnswer(clock, text(*chunks, delay=0.2)), chat, clock=clock, posted=MemoryMessages())

    assert chat.named("post", "edit") == []
    start, *appends = chat.named("start", "append")
    assert start.name == "start" and all(c.name == "append" for c in appends)
    assert start.text + "".join(c.text for c in appends) == "".join(chunks)
    assert chat.named("stop")[-1].at >= appends[-1].at
    assert len(appends) < len(chunks) // 2  # appends are paced like edits
    assert done.messages == 1


async def test_native_streams_end_at_the_platform_limit_with_fences_closed(clock: VirtualClock) -> None:
    chat = FakeChat(clock)
    chat.native = FakeNative(chat, limit=300)
    code = "\n".join(f"x = {i}" for i in range(80))
    answer_text = f"Code:\n\n{FENCE}py\n{code}\n{FENCE}\nEnd."
    chunks = [answer_text[i : i + 40] for i in range(0, len(answer_text), 40)]

    await deliver(FakeAnswer(clock, text(*chunks, delay=0.3)), chat, clock=clock, posted=MemoryMessages())

    streams = chat.shown()
    assert len(streams) >= 3 and len(chat.named("start")) == len(streams)
    assert all(len(s) <= 300 for s in streams)
    assert all(s.count(FENCE) % 2 == 0 for s in streams)
    lines = [line for s in streams for line in s.splitlines() if line.startswith("x = ")]
    assert lines == code.splitlines()


async def test_native_streaming_falls_back_to_edits_when_refused(clock: VirtualClock) -> None:
    chat = FakeChat(clock)
    chat.native = FakeNative(chat, fail_after=2)
    posted = MemoryMessages()

    await deliver(FakeAnswer(clock, text(*words(20), delay=0.6)), chat, clock=clock, posted=posted)

    (stream_ref,) = [c.ref for c in chat.named("start")]
    assert chat.named("post")  # the rest went on in an edited message
    assert "".join(chat.shown()).replace(" ", "") == "".join(words(20)).replace(" ", "")
    assert [m.kind for m in posted.messages] == ["stream", "message"] and posted.messages[0].ref == stream_ref


async def test_a_replace_takes_back_what_was_streamed(clock: VirtualClock) -> None:
    chat = FakeChat(clock)
    chat.native = FakeNative(chat)
    steps = [(0.0, Delta("text", "Something bad")), (2.0, Delta("replace", "Moderated."))]

    await deliver(FakeAnswer(clock, steps), chat, clock=clock, posted=MemoryMessages())

    assert [c.name for c in chat.named("start", "delete", "post")] == ["start", "delete", "post"]
    assert chat.shown() == ["Moderated."]


async def test_a_rerun_with_posted_messages_edits_them_even_with_native_streaming(clock: VirtualClock) -> None:
    chat = FakeChat(clock)
    chat.native = FakeNative(chat)
    chat.messages = {"m7": "half an answer"}

    await deliver(
        FakeAnswer(clock, text("Full answer.")), chat, clock=clock, posted=MemoryMessages([PostedMessage("m7")])
    )

    assert [(c.name, c.ref) for c in chat.calls] == [("edit", "m7")]
    assert chat.messages == {"m7": "Full answer."}


# -- time running out (Discord's interaction token) ---------------------------------------------------


async def test_past_the_deadline_the_answer_goes_on_through_the_handover(clock: VirtualClock) -> None:
    webhook = FakeChat(clock, original="@original").with_rules(expires_at=clock.time() + 10.0)
    channel = FakeChat(clock)
    channel._next = 100
    chunks = words(30)

    done = await deliver(
        FakeAnswer(clock, text(*chunks, delay=0.5)),
        webhook,
        clock=clock,
        posted=MemoryMessages(),
        handover=Handover(channel, MemoryMessages()),
    )

    assert done.handed_over and not done.cut_off
    assert all(c.at <= 10.0 for c in webhook.calls)  # (the fake clock's monotonic time starts at 0)
    before, after = webhook.shown()[0], channel.shown()[0]
    assert f"{before} {after}".split() == "".join(chunks).split()
    assert done.messages == 2


async def test_past_the_deadline_without_a_handover_the_answer_ends_with_a_note(clock: VirtualClock) -> None:
    chat = FakeChat(clock, original="@original").with_rules(expires_at=clock.time() + 5.0, expired_note="(too late)")
    answer = FakeAnswer(clock, text(*words(40), delay=0.5))

    done = await deliver(answer, chat, clock=clock, posted=MemoryMessages())

    assert done.cut_off and answer.read < 40 and answer.closed
    assert chat.shown()[0].endswith("\n\n(too late)") and chat.shown()[0].count("(too late)") == 1
    assert chat.named("post") == []  # everything went into the original response


async def test_past_the_deadline_before_any_words_only_the_note_shows(clock: VirtualClock) -> None:
    chat = FakeChat(clock, original="@original").with_rules(expires_at=clock.time() + 5.0, expired_note="(too late)")
    answer = FakeAnswer(clock, [(6.0, Delta("ping")), (1.0, Delta("text", "late words"))])

    done = await deliver(answer, chat, clock=clock, posted=MemoryMessages())

    assert done.cut_off and done.text == "(too late)"
    assert chat.shown() == ["(too late)"]


# -- a write budget (Slack's response_url) ------------------------------------------------------------


async def test_a_write_budget_keeps_one_write_for_the_end_and_says_where_it_cut(clock: VirtualClock) -> None:
    chat = FakeChat(clock, original="original", budget=3).with_rules(
        limit=200, edits_posts=False, max_updates=2, partial_suffix=" …", truncated_note="(cut)"
    )

    await deliver(FakeAnswer(clock, text(*words(120), delay=0.3)), chat, clock=clock, posted=MemoryMessages())

    updates = [c for c in chat.calls if c.text.endswith(" …")]
    assert len(updates) == 2 and all(c.ref == "original" for c in updates)
    assert chat.budget == 0
    final = chat.calls[len(updates) :]
    assert [c.name for c in final] == ["edit"]  # the one write left: the first page, with the note
    assert final[0].text.endswith("\n\n(cut)") and len(final[0].text) <= 200


async def test_a_failure_note_is_appended_to_a_native_stream_without_taking_it_back(clock: VirtualClock) -> None:
    chat = FakeChat(clock).with_rules(failure_note=lambda exc, partial: "(failed)")
    chat.native = FakeNative(chat)
    answer = FakeAnswer(clock, text("Half an answer ", "and more ", delay=0.5), fail=UpstreamError("x"))

    await deliver(answer, chat, clock=clock, posted=MemoryMessages())

    assert chat.named("delete", "post", "edit") == []
    assert chat.shown() == ["Half an answer and more \n\n(failed)"]


# -- resumable native streams (Lark's CardKit cards) ------------------------------------------------


async def test_a_rerun_goes_on_in_the_streams_a_resumable_platform_kept(clock: VirtualClock) -> None:
    chat = FakeChat(clock)
    chat.native = FakeResumable(chat, limit=500)
    chat.messages = {"s1": "half an ans"}
    posted = MemoryMessages([PostedMessage("s1", "stream")])

    done = await deliver(FakeAnswer(clock, text("Full ", "answer.", delay=1.5)), chat, clock=clock, posted=posted)

    assert [c.name for c in chat.calls if c.name != "stop"][:1] == ["resume"]
    assert chat.named("start", "delete", "post") == []
    assert chat.messages == {"s1": "Full answer."}
    assert posted.messages == [PostedMessage("s1", "stream")] and done.messages == 1


async def test_a_shorter_rerun_deletes_the_resumable_streams_it_no_longer_needs(clock: VirtualClock) -> None:
    chat = FakeChat(clock)
    chat.native = FakeResumable(chat, limit=500)
    chat.messages = {"s1": "page one", "s2": "page two"}
    posted = MemoryMessages([PostedMessage("s1", "stream"), PostedMessage("s2", "stream")])

    await deliver(FakeAnswer(clock, text("Short.")), chat, clock=clock, posted=posted)

    assert chat.messages == {"s1": "Short."}
    assert [c.ref for c in chat.named("delete")] == ["s2"]
    assert posted.messages == [PostedMessage("s1", "stream")]


async def test_a_long_rerun_resumes_kept_streams_in_order_then_starts_new_ones(clock: VirtualClock) -> None:
    chat = FakeChat(clock)
    chat.native = FakeResumable(chat, limit=300)
    chat.messages = {"s1": "old"}
    posted = MemoryMessages([PostedMessage("s1", "stream")])

    await deliver(FakeAnswer(clock, text(*words(80), delay=0.1)), chat, clock=clock, posted=posted)

    assert [c.ref for c in chat.named("resume")] == ["s1"]
    assert len(chat.named("start")) >= 1 and chat.named("delete") == []
    assert "".join(chat.shown()).replace(" ", "") == "".join(words(80)).replace(" ", "")
    assert [m.ref for m in posted.messages][0] == "s1" and len(posted.messages) == len(chat.messages)


async def test_a_refused_resume_falls_back_to_edited_messages_without_losing_the_old_stream(
    clock: VirtualClock,
) -> None:
    chat = FakeChat(clock)
    chat.native = FakeResumable(chat, fail_after=0)
    chat.messages = {"s1": "half"}
    posted = MemoryMessages([PostedMessage("s1", "stream")])

    await deliver(FakeAnswer(clock, text("Whole answer.")), chat, clock=clock, posted=posted)

    assert [c.ref for c in chat.named("delete")] == ["s1"]
    assert chat.shown() == ["Whole answer."] and [m.kind for m in posted.messages] == ["message"]
