"""Conversation continuity for clients that resend the whole history on every turn.

The rule, per API key, user and model:

1. a `conversation_id` extension field (a thread id this API returned earlier) wins;
2. else, when the messages before the last user message include an assistant message, their
   fingerprint (`translate.history_key`) is looked up: `hist:{fingerprint}` → thread id;
3. else (a fresh history, or one this endpoint never answered) a new thread starts.

After an answer, `hist:{fingerprint(request messages + the answer)}` → thread is stored, so the
client's next request, which resends that answer, finds the thread. A thread id is the
`conversation_key` given to `ctx.apps`: the gateway remembers the Dify conversation of each
(thread, Dify user, app), runs one answer at a time in it, and survives restarts. On a known
thread only the new user message is sent to Dify. A new thread whose request carries earlier
messages (an edited turn, few-shot examples, a history from elsewhere) sends them once, as a
transcript ahead of the new message (`translate.transcript`), so they are not lost; from then on
the Dify conversation holds them.

A thread made up here (rule 3) is passed to `ctx.apps` as `new_conversation`: nobody can know its
id before this answer reveals it, so there is no conversation to look up and no earlier answer to
wait for (one store write takes its conversation lock). A client's own `conversation_id` is never
treated so, even on a fresh history: another request may carry the same id.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import TypedDict

from endpoints.openai.translate import ChatRequest, Message, history_key
from gateway.plugin import Storage

__all__ = ["THREAD_TTL", "Conversation", "Thread", "conversation_args", "find_thread", "remember_thread"]

THREAD_TTL = 7 * 24 * 3600.0


@dataclass(frozen=True, slots=True)
class Thread:
    id: str
    new: bool  # the first turn of the thread: the system text and earlier messages are sent with it
    # Made up by this request (not a client's `conversation_id`): nobody can know the id before
    # this answer reveals it, so `ctx.apps` neither looks it up nor queues it (`new_conversation`).
    minted: bool = False


class Conversation(TypedDict):
    conversation_key: str | None
    new_conversation: bool


def conversation_args(thread: Thread | None) -> Conversation:
    """The `ctx.apps` (`DifyCall.ask_args`) arguments of an answer in `thread` (None: in none)."""
    if thread is None:
        return {"conversation_key": None, "new_conversation": False}
    return {"conversation_key": thread.id, "new_conversation": thread.minted}


async def find_thread(storage: Storage, request: ChatRequest, key_id: str, user: str) -> Thread:
    if request.conversation_id is not None:
        return Thread(request.conversation_id, new=not request.continues)
    if request.continues:
        known = await storage.get("hist:" + history_key(key_id, user, request.model, request.prior))
        if known is not None:
            return Thread(known, new=False)
    return Thread("thr_" + secrets.token_hex(12), new=True, minted=True)


async def remember_thread(
    storage: Storage, request: ChatRequest, key_id: str, user: str, answer: str, thread: str
) -> None:
    extended = (*request.messages, Message("assistant", answer))
    await storage.set("hist:" + history_key(key_id, user, request.model, extended), thread, ttl=THREAD_TTL)
