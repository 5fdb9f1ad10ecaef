"""Settings of a `telegram` endpoint.

`bot_token` may be left out when the endpoint is created (add it from @BotFather afterwards);
until it is set, updates are acknowledged but not answered. `secret_token` is generated at
creation when not given (shown once); `telegram connect` hands it to Telegram with the webhook,
and every update must carry it.
"""

from __future__ import annotations

import re
import secrets
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, field_validator

from gateway.plugin import query_input_setting

__all__ = ["DEFAULT_API_BASE_URL", "TelegramSettings", "generate_secret_token"]

DEFAULT_API_BASE_URL = "https://api.telegram.org"
# Telegram's rule for a webhook's secret_token: 1-256 characters of A-Z a-z 0-9 _ -.
_SECRET_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")
_BOT_TOKEN = re.compile(r"[0-9]{1,20}:[A-Za-z0-9_-]{20,100}")


def generate_secret_token() -> tuple[str, str]:
    """A new webhook secret (43 URL-safe characters): shown once, stored."""
    token = secrets.token_urlsafe(32)
    return token, token


class TelegramSettings(BaseModel):
    bot_token: SecretStr | None = Field(default=None, description="The bot's token from @BotFather (123456:ABC-…)")
    secret_token: SecretStr | None = Field(
        default=None,
        description="The webhook's secret (X-Telegram-Bot-Api-Secret-Token), generated at creation when not "
        "given; without one every request is refused",
    )
    api_base_url: str = Field(default=DEFAULT_API_BASE_URL, description="Bot API server (a local fake in tests)")
    greeting: str = Field(
        default="Hi! Ask me anything. /reset starts a new conversation.",
        min_length=1,
        max_length=1000,
        description="The answer to /start",
    )
    edit_interval: float = Field(
        default=1.0, ge=0.2, le=30.0, description="Seconds between draft updates of a streamed answer (private chats)"
    )
    group_edit_interval: float = Field(
        default=3.0, ge=0.5, le=60.0, description="Seconds between edits in groups (Telegram: ~20 messages/min)"
    )
    drafts: bool = Field(default=True, description="Stream in private chats with sendMessageDraft")
    thinking_text: str = Field(default="…", min_length=1, max_length=200, description="The placeholder in groups")
    show_reasoning: bool = Field(default=False, description="Keep <think> blocks of reasoning models in answers")
    query_input: str | None = query_input_setting()

    @field_validator("bot_token")
    @classmethod
    def _bot_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not _BOT_TOKEN.fullmatch(value.get_secret_value()):
            raise ValueError("must be a bot token from @BotFather (digits, a colon, then the key)")
        return value

    @field_validator("secret_token")
    @classmethod
    def _secret_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not _SECRET_TOKEN.fullmatch(value.get_secret_value()):
            raise ValueError("must be 1-256 characters of A-Z, a-z, 0-9, '_' or '-' (Telegram's rule)")
        return value

    @field_validator("api_base_url")
    @classmethod
    def _api_base_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ValueError("must be an http(s) URL such as https://api.telegram.org")
        return value.rstrip("/")
