"""Value objects of the Dify client: app config, request, answer, and streamed deltas."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args
from urllib.parse import urlsplit

from gateway.dify.events import (
    AgentThoughtEvent,
    DifyEvent,
    HumanInputRequiredEvent,
    MessageFileEvent,
    Usage,
)
from gateway.exceptions import ConfigurationError

__all__ = ["APP_MODES", "Answer", "AppDescription", "AppMode", "AskRequest", "Delta", "DeltaKind", "DifyApp"]

AppMode = Literal["chat", "agent-chat", "agent", "advanced-chat", "completion", "workflow"]
APP_MODES: frozenset[str] = frozenset(get_args(AppMode))

CHAT_MODES: frozenset[str] = frozenset({"chat", "agent-chat", "agent", "advanced-chat"})


@dataclass(frozen=True, slots=True)
class DifyApp:
    """One Dify app as the client sees it. `api_key` is plain text here (the caller decrypts it)
    and is kept out of `repr`.

    Args:
        name: our label for the app (used in error messages and as the breaker key).
        base_url: the Service API root including `/v1`, e.g. `https://api.dify.ai/v1`.
        api_key: the app's API key (`app-...`).
        mode: the app mode from `GET /info`; it picks the endpoint and event handling.
        output_key: Workflow apps only: the `outputs` key holding the answer text. Without it, a
            single string output is used when no `text_chunk` arrived.
    """

    name: str
    base_url: str
    api_key: str = field(repr=False)
    mode: AppMode = "chat"
    output_key: str | None = None
    previous_key: str | None = field(default=None, repr=False)  # tried once when Dify answers 401 (a key rotation)

    def __post_init__(self) -> None:
        if self.mode not in APP_MODES:
            raise ConfigurationError(f"unknown Dify app mode {self.mode!r} for app '{self.name}'")
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigurationError(f"the Dify base URL of app '{self.name}' must be an http(s) URL")
        if not self.api_key:
            raise ConfigurationError(f"the Dify app '{self.name}' has no API key")

    def on_previous_key(self) -> DifyApp | None:
        """The app with its previous key (during a key rotation), or None when it has none."""
        if not self.previous_key:
            return None
        return DifyApp(self.name, self.base_url, self.previous_key, self.mode, self.output_key)

    def url(self, path: str) -> str:
        return self.base_url.rstrip("/") + path


@dataclass(frozen=True, slots=True)
class AskRequest:
    """What to ask. `user` is the stable end-user id (dify-api.md §6); never a global one.

    `conversation_id=None` starts a new conversation (the field is omitted, never sent as "").
    `query` is ignored by Workflow apps (put values in `inputs`); Completion apps get it only when
    non-empty (it is a legacy field there).
    """

    user: str
    query: str = ""
    inputs: Mapping[str, Any] = field(default_factory=dict)
    conversation_id: str | None = None
    files: Sequence[Mapping[str, Any]] = ()
    auto_generate_name: bool | None = None
    workflow_id: str | None = None

    def __post_init__(self) -> None:
        if not self.user:
            raise ConfigurationError("a Dify request needs a non-empty user")


@dataclass(frozen=True, slots=True)
class AppDescription:
    """`GET /info`."""

    name: str
    description: str
    tags: tuple[str, ...]
    mode: str
    author_name: str


DeltaKind = Literal["text", "replace", "reasoning", "thought", "file", "progress", "ping"]


@dataclass(frozen=True, slots=True)
class Delta:
    """One step of a streamed answer, for callers that render text as it arrives.

    kinds:
        text:      append `text` to what was shown.
        replace:   `text` replaces everything shown so far (output moderation, or a New Agent
                   final message that differs from the streamed one). `event` tells which.
        reasoning: model reasoning (`reasoning_chunk`); hidden by default in most UIs.
        thought:   an agent step (`agent_thought`: `event` has tool, tool_input, observation).
        file:      a `message_file`; `text` is its URL (check scheme/host before rendering).
        progress:  a workflow node started; `text` is its title (for status lines).
        ping:      Dify's keep-alive; lets an SSE relay keep its own client alive.
    """

    kind: DeltaKind
    text: str = ""
    event: DifyEvent | None = None


@dataclass(frozen=True, slots=True)
class Answer:
    """An assembled answer. `complete` is False for the partial answers attached to errors.

    `app` names the app that answered: with a fallback it may not be the primary, and its
    `conversation_id` belongs to that app. `conversation_reset` is True when the given
    conversation no longer existed and a new one was started.
    """

    text: str
    app: str
    mode: str
    complete: bool = True
    conversation_id: str | None = None
    message_id: str | None = None
    task_id: str | None = None
    workflow_run_id: str | None = None
    usage: Usage | None = None
    outputs: Mapping[str, Any] | None = None
    replaced: bool = False
    replace_reason: str | None = None
    reasoning: str = ""
    thoughts: tuple[AgentThoughtEvent, ...] = ()
    files: tuple[MessageFileEvent, ...] = ()
    retriever_resources: tuple[Mapping[str, Any], ...] = ()
    paused: bool = False
    human_input: HumanInputRequiredEvent | None = None
    conversation_reset: bool = False
