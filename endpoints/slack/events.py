"""What an inbound Slack delivery asks for, decided from its parsed body alone (pure).

`classify(envelope)` turns an Events API envelope into a `SlackTrigger` to answer, or the reason it is
ignored (platforms.md §1.4): `app_mention` in channels, `message` in DMs (`channel_type: im`),
and replies in threads (the caller still checks the bot answered in that thread). Messages of
bots (`bot_id`, `subtype: bot_message`) and of this bot's own user, and every other subtype
(edits, deletes, joins, broadcasts, …), are ignored.

`parse_command(form)` does the same for a slash command's form fields.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

from gateway.plugin import as_text

__all__ = ["SlashCommand", "SlackTrigger", "classify", "parse_command", "thread_key"]

TriggerKind = Literal["mention", "dm", "thread"]


def thread_key(team: str, channel: str, thread_ts: str) -> str:
    """The storage key remembering that the bot takes part in a thread."""
    return f"thread:{team}:{channel}:{thread_ts}"


@dataclass(frozen=True, slots=True)
class SlackTrigger:
    """A message to answer. `thread_ts` is the thread the answer goes into."""

    kind: TriggerKind
    event_id: str
    team: str
    channel: str
    channel_type: str
    user: str
    text: str
    ts: str
    thread_ts: str
    bot_user_id: str | None = None

    @property
    def conversation_key(self) -> str:
        """One Dify conversation per Slack thread (per person: the gateway keys memory by user too)."""
        return f"slack:{self.team}:{self.channel}:{self.thread_ts}"

    @property
    def dify_user(self) -> str:
        return f"slack:{self.team}:{self.user}"

    @property
    def is_dm(self) -> bool:
        return self.channel_type == "im"

    def to_payload(self) -> dict[str, Any]:
        # Flat fields only: a comprehension, not dataclasses.asdict's deep copy (this is on the ack path).
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> SlackTrigger:
        fields: dict[str, Any] = {name: payload.get(name) for name in cls.__dataclass_fields__}
        return cls(**fields)


def bot_user_of(envelope: Mapping[str, Any]) -> str | None:
    """The bot user this delivery is for, from the envelope's `authorizations`."""
    authorizations = envelope.get("authorizations")
    for auth in authorizations if isinstance(authorizations, list) else ():
        if isinstance(auth, dict) and auth.get("is_bot") and (user := as_text(auth.get("user_id"))):
            return user
    return None


def classify(envelope: Mapping[str, Any]) -> SlackTrigger | str:
    """The trigger in an `event_callback` envelope, or why there is nothing to answer."""
    if envelope.get("type") != "event_callback":
        return f"envelope type {envelope.get('type')!r}"
    event = envelope.get("event")
    event_id = as_text(envelope.get("event_id"))
    if not isinstance(event, dict) or event_id is None:
        return "no event or event_id"
    bot_user = bot_user_of(envelope)
    if event.get("bot_id") or event.get("subtype") == "bot_message":
        return "a bot's message"
    if event.get("subtype"):
        return f"message subtype {event['subtype']!r}"
    user, channel, ts = as_text(event.get("user")), as_text(event.get("channel")), as_text(event.get("ts"))
    team = as_text(envelope.get("team_id")) or as_text(event.get("team"))
    raw_text = event.get("text")
    text = raw_text if isinstance(raw_text, str) else ""
    if user is None or channel is None or ts is None or team is None:
        return "missing user, channel, ts or team"
    if user == bot_user:
        return "the bot's own message"
    thread_ts = as_text(event.get("thread_ts"))
    kind: TriggerKind
    channel_type = str(event.get("channel_type") or "")
    if event.get("type") == "app_mention":
        kind = "mention"
    elif event.get("type") != "message":
        return f"event type {event.get('type')!r}"
    elif channel_type == "im":
        kind = "dm"
    elif thread_ts is None or thread_ts == ts:
        return "a channel message outside a thread"
    elif bot_user is not None and f"<@{bot_user}" in text:
        return "a mention in a thread (answered through its app_mention event)"
    else:
        kind = "thread"
    return SlackTrigger(
        kind=kind,
        event_id=event_id,
        team=team,
        channel=channel,
        channel_type=channel_type or ("channel" if kind != "dm" else "im"),
        user=user,
        text=text,
        ts=ts,
        thread_ts=thread_ts or ts,
        bot_user_id=bot_user,
    )


@dataclass(frozen=True, slots=True)
class SlashCommand:
    """A slash command invocation, answered through its `response_url`."""

    command: str
    text: str
    team: str
    channel: str
    user: str
    response_url: str
    received_at: float

    @property
    def conversation_key(self) -> str:
        """Slash commands have no thread: one conversation per channel (and per person)."""
        return f"slack:{self.team}:{self.channel}:command"

    @property
    def dify_user(self) -> str:
        return f"slack:{self.team}:{self.user}"

    @property
    def key(self) -> str:
        """The job's idempotency key: every invocation has its own response_url."""
        return "cmd:" + hashlib.sha256(self.response_url.encode()).hexdigest()[:32]

    def to_payload(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> SlashCommand:
        fields: dict[str, Any] = {name: payload.get(name) for name in cls.__dataclass_fields__}
        return cls(**fields)


def parse_command(form: Mapping[str, list[str]], received_at: float) -> SlashCommand | str:
    """The slash command in a form body, or what is missing."""
    fields = {name: values[0] for name, values in form.items() if values}
    needed = ("command", "team_id", "channel_id", "user_id", "response_url")
    missing = [name for name in needed if not fields.get(name)]
    if missing:
        return f"missing {', '.join(missing)}"
    return SlashCommand(
        command=fields["command"],
        text=fields.get("text", "").strip(),
        team=fields["team_id"],
        channel=fields["channel_id"],
        user=fields["user_id"],
        response_url=fields["response_url"],
        received_at=received_at,
    )
