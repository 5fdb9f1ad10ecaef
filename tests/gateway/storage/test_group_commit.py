"""Group commit (`gateway.storage._group_commit`): batches, outcomes per caller, and the turn they land in."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from gateway.storage._group_commit import Done, GroupCommit

pytestmark = pytest.mark.anyio


class Writes:
    """A `start` that records each batch and finishes it only when the test says so."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.dones: list[Done[int]] = []

    def start(self, items: Sequence[int], done: Done[int]) -> None:
        self.batches.append(list(items))
        self.dones.append(done)


async def turn() -> None:
    await asyncio.sleep(0)


async def test_callers_of_one_turn_share_a_batch_and_later_ones_wait_for_the_next() -> None:
    writes = Writes()
    commits = GroupCommit(writes.start)
    first = [asyncio.ensure_future(commits.submit(i)) for i in range(3)]
    await turn()
    await turn()
    assert writes.batches == [[0, 1, 2]]
    later = [asyncio.ensure_future(commits.submit(i)) for i in (3, 4)]
    await turn()
    assert writes.batches == [[0, 1, 2]]  # one batch at a time
    writes.dones[0]([0, ValueError("taken"), 20])
    assert writes.batches == [[0, 1, 2], [3, 4]]  # the next batch started in the turn the first landed
    await turn()
    assert all(f.done() for f in first)  # its callers resume in the very next turn, with their outcomes
    assert first[0].result() == 0 and first[2].result() == 20
    with pytest.raises(ValueError, match="taken"):
        first[1].result()
    writes.dones[1](RuntimeError("the store is gone"))  # the whole batch failed
    for f in later:
        with pytest.raises(RuntimeError, match="the store is gone"):
            await f


async def test_a_caller_that_leaves_does_not_stop_its_batch() -> None:
    writes = Writes()
    commits = GroupCommit(writes.start)
    leaving, staying = asyncio.ensure_future(commits.submit(1)), asyncio.ensure_future(commits.submit(2))
    await turn()
    await turn()
    leaving.cancel()
    writes.dones[0]([10, 20])
    assert await staying == 20
    assert writes.batches == [[1, 2]]


async def test_wait_idle_returns_once_everything_submitted_is_written() -> None:
    writes = Writes()
    commits = GroupCommit(writes.start)
    pending = asyncio.ensure_future(commits.submit(1))
    idle = asyncio.ensure_future(commits.wait_idle())
    await turn()
    await turn()
    assert not idle.done()
    writes.dones[0]([1])
    await turn()
    assert idle.done() and pending.done()
    await commits.wait_idle()  # idle already: returns at once


async def test_awaiting_runs_an_async_write_per_batch() -> None:
    written: list[list[str]] = []

    async def write(items: Sequence[str]) -> list[str | Exception]:
        written.append(list(items))
        await turn()
        return [item.upper() for item in items]

    commits: GroupCommit[str, str] = GroupCommit.awaiting(write)
    assert list(await asyncio.gather(commits.submit("a"), commits.submit("b"))) == ["A", "B"]
    assert written == [["a", "b"]]


async def test_a_start_that_raises_fails_its_batch_and_the_next_batch_still_runs() -> None:
    calls: list[list[int]] = []

    def start(items: Sequence[int], done: Done[int]) -> None:
        calls.append(list(items))
        if len(calls) == 1:
            raise OSError("disk gone")
        done([i * 2 for i in items])

    commits = GroupCommit(start)
    with pytest.raises(OSError, match="disk gone"):
        await commits.submit(1)
    assert await commits.submit(2) == 4


async def test_a_batch_cut_short_by_the_loop_shutting_down_cancels_every_caller_still_waiting() -> None:
    writes = Writes()
    commits = GroupCommit(writes.start)
    in_batch = asyncio.ensure_future(commits.submit(1))
    await turn()
    await turn()
    queued = asyncio.ensure_future(commits.submit(2))
    await turn()  # waiting for the next batch
    writes.dones[0](asyncio.CancelledError())  # written or not, nobody knows
    await turn()
    assert in_batch.cancelled() and queued.cancelled()
    assert writes.batches == [[1]]  # nothing left to start
    await commits.wait_idle()
