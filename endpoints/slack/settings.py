"""The Slack endpoint's settings.

`signing_secret` and `bot_token` may be left out when the endpoint is created (the Slack app
that provides them is made from the endpoint's URL afterwards). Until `signing_secret` is set,
every request is refused with 401; until `bot_token` is set, events are acknowledged but not
answered (slash commands answer through `response_url` and don't need it).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, field_validator

from gateway.plugin import query_input_setting

__all__ = ["SlackSettings"]

_COMMAND = re.compile(r"/[a-z0-9][a-z0-9_-]{0,31}")


class SlackSettings(BaseModel):
    signing_secret: SecretStr | None = Field(
        default=None, description="Basic Information → App Credentials → Signing Secret; verifies every request"
    )
    bot_token: SecretStr | None = Field(default=None, description="OAuth & Permissions → Bot User OAuth Token (xoxb-)")
    api_base_url: str = Field(default="https://slack.com/api", description="Slack Web API base (a local fake in tests)")
    native_streaming: bool = Field(
        default=False, description="Stream with chat.startStream/appendStream/stopStream instead of chat.update edits"
    )
    slash_command: str = Field(default="/ask", description="The slash command put into the app manifest")
    edit_interval: float = Field(default=1.0, ge=0.1, le=30.0, description="Seconds between edits of a streamed answer")
    message_limit: int = Field(
        default=3000, ge=200, le=3000, description="Characters per message (a section block holds 3,000)"
    )
    stream_limit: int = Field(
        default=12000, ge=200, le=12000, description="Characters per natively streamed message (Slack: 12,000)"
    )
    follow_threads: bool = Field(default=True, description="Answer replies in threads the bot answered in")
    thread_ttl_hours: float = Field(default=168.0, gt=0, le=24 * 90, description="How long a thread is followed")
    thinking_text: str = Field(default="…thinking", min_length=1, max_length=200)
    show_reasoning: bool = Field(default=False, description="Keep <think> blocks of reasoning models in answers")
    slash_updates: int = Field(
        default=2, ge=0, le=3, description="Partial answers sent through a slash command's response_url (of 5 uses)"
    )
    response_url_hosts: tuple[str, ...] = Field(
        default=("hooks.slack.com", "hooks.slack-gov.com"),
        description="Hosts a slash command's response_url may point at (plus api_base_url's host)",
    )
    app_name: str = Field(default="Dify", min_length=1, max_length=35, description="Name in the app manifest")
    query_input: str | None = query_input_setting()

    @field_validator("bot_token")
    @classmethod
    def _bot_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith("xoxb-"):
            raise ValueError("must be a bot token (xoxb-…), from OAuth & Permissions")
        return value

    @field_validator("signing_secret")
    @classmethod
    def _signing_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("api_base_url")
    @classmethod
    def _api_base_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL such as https://slack.com/api")
        return value.rstrip("/")

    @field_validator("slash_command")
    @classmethod
    def _slash_command(cls, value: str) -> str:
        if _COMMAND.fullmatch(value) is None:
            raise ValueError("must look like /ask: a slash, then up to 32 lower-case letters, digits, '-' or '_'")
        return value

    def allows_response_url(self, url: str) -> bool:
        """True when a slash command's `response_url` points at Slack (or at api_base_url's host)."""
        api = urlsplit(self.api_base_url)
        try:
            parts = urlsplit(url)
            where = (parts.scheme, parts.hostname, parts.port)
        except ValueError:  # e.g. a port that isn't a number
            return False
        if parts.scheme == "https" and parts.hostname in self.response_url_hosts:
            return True
        return where == (api.scheme, api.hostname, api.port)
