"""A thread the openai plugin makes up skips the conversation queue, yet stays ordered: a turn
that names it while its first answer still streams waits, then continues its Dify conversation
(the real `openai` SDK, real uvicorn, the Dify simulator)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from endpoints.openai.chat import dify_user
from endpoints.openai.keys import hash_key, key_id
from gateway.clock import SystemClock
from gateway.dify.conversations import _h
from gateway.storage.sqlite import SQLiteStore
from tests.endpoints.openai.stack import openai_stack
from tests.endpoints.test_overload import SLOW, HeldAnswers

pytestmark = [pytest.mark.anyio, pytest.mark.live]


async def test_a_turn_naming_a_new_thread_mid_answer_waits_and_continues_it(tmp_path: Path) -> None:
    held = HeldAnswers()  # the simulator's answers stop after their first token until go_on()
    async with openai_stack(tmp_path, {"support": SLOW}, simulator_clock=held) as stack, stack.client() as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="support", messages=[{"role": "user", "content": "one two three"}], stream=True
        )
        thread = raw.headers["x-conversation-id"]
        assert thread.startswith("thr_")
        first = raw.parse()
        async for chunk in first:  # the first text: the answer is under way, holding its thread
            if chunk.choices and chunk.choices[0].delta.content:
                break
        second = asyncio.create_task(
            client.chat.completions.create(
                model="support", messages=[{"role": "user", "content": "again"}], extra_body={"conversation_id": thread}
            )
        )
        # The second turn queued for the thread (drew the first ticket) while the first still streams.
        store = await SQLiteStore.open(str(tmp_path / "gateway.db"), clock=SystemClock())
        try:
            user = dify_user(key_id(hash_key(stack.key)), None)
            tail = f"clock:{_h(f'{stack.endpoint_id}:support:{thread}' + chr(0) + user)}:tail"
            for _ in range(10_000):
                if await store.kv_get(tail) == "1":
                    break
                await asyncio.sleep(0.002)
            else:
                raise AssertionError("the second turn never queued")
        finally:
            await store.aclose()
        assert len(await stack.generation_bodies()) == 1  # it waits: Dify saw nothing of it yet
        held.go_on()
        text = "".join([c.choices[0].delta.content or "" async for c in first])
        answer = await second
        bodies = await stack.generation_bodies()
        conversations = (await stack.stats())["conversations"]
    assert text.endswith("one two three")
    assert [b["query"] for b in bodies] == ["one two three", "again"]
    assert "conversation_id" not in bodies[0] and bodies[1]["conversation_id"]  # continued, not a new one
    assert answer.conversation_id == thread  # type: ignore[attr-defined]
    assert conversations == 1


async def test_a_new_threads_first_turn_costs_one_lock_write_streamed_and_none_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    touched: list[tuple[str, str]] = []  # (store method, key) of conversation locks and memory
    for name in ("kv_get", "kv_set", "kv_incr", "kv_set_if_absent", "kv_delete_if_equals"):
        real = getattr(SQLiteStore, name)

        async def spy(self: SQLiteStore, key: str, *args: Any, _real: Any = real, _name: str = name, **kw: Any) -> Any:
            if key.startswith("conv:"):
                touched.append((_name, "conv"))
            elif key.startswith("clock:"):  # clock:{hash}:lock|tail|serving
                touched.append((_name, "clock:" + key.rsplit(":", 1)[1]))
            return await _real(self, key, *args, **kw)

        monkeypatch.setattr(SQLiteStore, name, spy)
    async with openai_stack(tmp_path) as stack, stack.client() as client:
        asked = await client.chat.completions.create(model="support", messages=[{"role": "user", "content": "hi"}])
        assert [name for name, _ in touched] == ["kv_set"]  # the conversation is remembered; no lock
        touched.clear()
        stream = await client.chat.completions.create(
            model="support", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        assert "".join([c.choices[0].delta.content or "" async for c in stream]) == "You said: hi"
        assert touched == [
            ("kv_set_if_absent", "clock:lock"),
            ("kv_set", "conv"),
            ("kv_delete_if_equals", "clock:lock"),
        ]
        touched.clear()
        again = await client.chat.completions.create(
            model="support",
            messages=[{"role": "user", "content": "more"}],
            extra_body={"conversation_id": asked.conversation_id},  # type: ignore[attr-defined]
        )
        assert again.conversation_id == asked.conversation_id  # type: ignore[attr-defined]
        assert ("kv_get", "conv") in touched and ("kv_incr", "clock:tail") in touched  # a known thread queues
        bodies = await stack.generation_bodies()
    assert bodies[2]["conversation_id"] and "conversation_id" not in bodies[1]
