"""The Lark / Feishu endpoint's settings.

`encrypt_key` is required: without it Lark sends events in the clear with only the body's
verification token to prove where they come from (platforms.md §3, Lark). `domain` picks the
Open API (`feishu`: open.feishu.cn, `lark`: open.larksuite.com); `api_base_url` overrides it
(a local fake in tests).
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, field_validator

from gateway.plugin import query_input_setting

__all__ = ["DOMAINS", "LarkSettings"]

DOMAINS = {"feishu": "https://open.feishu.cn/open-apis", "lark": "https://open.larksuite.com/open-apis"}


class LarkSettings(BaseModel):
    app_id: str = Field(pattern=r"^cli_[A-Za-z0-9]{4,64}$", description="Credentials & Basic Info → App ID (cli_…)")
    app_secret: SecretStr = Field(description="Credentials & Basic Info → App Secret")
    encrypt_key: SecretStr = Field(
        description="Events & Callbacks → Encryption Strategy → Encrypt Key: decrypts and verifies every event"
    )
    verification_token: SecretStr | None = Field(
        default=None, description="Events & Callbacks → Encryption Strategy → Verification Token (checked when set)"
    )
    domain: Literal["feishu", "lark"] = Field(
        default="feishu", description="feishu (open.feishu.cn, China) or lark (open.larksuite.com, international)"
    )
    api_base_url: str | None = Field(default=None, description="Open API base overriding the domain's (tests)")
    cardkit: bool = Field(default=True, description="Stream answers into CardKit cards (else patched card messages)")
    reply_in_thread: bool = Field(default=True, description="In groups, answer in the message's thread")
    edit_interval: float = Field(default=0.5, ge=0.1, le=10.0, description="Seconds between updates of an answer")
    card_limit: int = Field(
        default=8000, ge=500, le=9000, description="Characters per card; longer answers continue in a new card"
    )
    thinking_text: str = Field(default="…thinking", min_length=1, max_length=200)
    query_input: str | None = query_input_setting()

    @field_validator("app_secret", "encrypt_key", "verification_token")
    @classmethod
    def _not_blank(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("api_base_url")
    @classmethod
    def _api_base_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ValueError("must be an http(s) URL such as https://open.feishu.cn/open-apis")
        return value.rstrip("/")

    @property
    def api_base(self) -> str:
        """The Open API base the calls go to (…/open-apis)."""
        return self.api_base_url or DOMAINS[self.domain]
