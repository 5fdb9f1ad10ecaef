"""Settings of a `discord` endpoint."""

from __future__ import annotations

import re

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator

from gateway.plugin import Ed25519Key, parse_ed25519_public_key, query_input_setting

__all__ = ["DEFAULT_API_BASE_URL", "DiscordSettings"]

DEFAULT_API_BASE_URL = "https://discord.com/api/v10"
# Discord's rule is wider (any letter or digit of any script); ours stays ASCII so the names are
# the same whatever the locale. Lower case only: Discord lowercases names where it can.
_COMMAND_NAME = re.compile(r"[-_a-z0-9]{1,32}")


class DiscordSettings(BaseModel):
    application_id: str = Field(
        pattern=r"^[0-9]{5,25}$", description="Application ID (Developer Portal → General Information)"
    )
    public_key: str = Field(description="Public key, 64 hex characters (Developer Portal → General Information)")
    bot_token: SecretStr | None = Field(
        default=None,
        description="Bot token (Developer Portal → Bot): registers commands, finishes answers that outlive "
        "the 15-minute interaction token, and runs the gateway bot",
    )
    api_base_url: str = Field(default=DEFAULT_API_BASE_URL, description="Discord REST API base URL")
    ask_command: str = Field(default="ask", description="Name of the slash command that asks the app")
    reset_command: str = Field(default="reset", description="Name of the slash command that starts over")
    edit_interval: float = Field(
        default=1.0, gt=0, le=10, description="Seconds between edits of a streaming answer (Discord: ~1/s)"
    )
    token_deadline: float = Field(
        default=840.0,
        gt=0,
        le=900,
        description="Seconds after an interaction when its answer stops using the interaction token "
        "(valid 15 minutes) and goes on as a channel message (with bot_token) or ends with a note",
    )
    bot_threads: bool = Field(default=True, description="The gateway bot answers a mention in a new thread")
    query_input: str | None = query_input_setting()

    @property
    def verify_key(self) -> Ed25519Key:
        """`public_key` decoded, kept on the model: the gateway keeps one model per endpoint version,
        so every interaction of an endpoint is verified with the same key object. Decoded again if
        `public_key` changed since (an assignment, or a `model_copy(update=…)` that copies the kept key)."""
        key: Ed25519Key | None = self.__dict__.get("_verify_key")
        if key is None or key.hex != self.public_key:
            key = self.__dict__["_verify_key"] = Ed25519Key(self.public_key)
        return key

    @field_validator("public_key")
    @classmethod
    def _public_key(cls, value: str) -> str:
        parse_ed25519_public_key(value)  # ValueError: 64 hex characters (32 bytes)
        return value.strip().lower()

    @field_validator("api_base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", value):
            raise ValueError("must be an http(s) URL without query or fragment")
        return value.rstrip("/")

    @field_validator("ask_command", "reset_command")
    @classmethod
    def _command(cls, value: str) -> str:
        if not _COMMAND_NAME.fullmatch(value):
            raise ValueError("must be 1-32 lower-case letters, digits, '-' or '_'")
        return value

    @model_validator(mode="after")
    def _distinct(self) -> DiscordSettings:
        if self.ask_command == self.reset_command:
            raise ValueError("ask_command and reset_command must differ")
        return self
