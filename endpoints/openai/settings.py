"""Settings of an `openai` endpoint."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, Field, field_validator

from endpoints.openai.hashes import hash_key, setting_hash
from gateway.plugin import query_input_setting

__all__ = ["OpenAISettings"]

_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")


class OpenAISettings(BaseModel):
    api_key: str | None = Field(
        default=None,
        description="SHA-256 of the initial API key, 'sha256:<hex>' (generated at creation; the key is shown once). "
        "A plain key given here is hashed before it is stored.",
    )
    system_input: str | None = Field(
        default=None,
        max_length=128,
        description="Dify input variable that receives system messages; unset: they prefix the first query",
    )
    query_input: str | None = query_input_setting()
    workflow_output: str | None = Field(
        default=None, max_length=128, description="Workflow output holding the answer (default: the streamed text)"
    )
    schema_input: str | None = Field(
        default=None,
        max_length=128,
        description="Dify input variable that receives the JSON Schema of a structured-output request "
        "(it is always also given to the app as an instruction)",
    )
    structured_fallback: dict[str, Any] | None = Field(
        default=None,
        description="Values answered (marked structured_fallback) when an app's JSON stays invalid after one "
        "re-ask: schema name -> value, '*' for any schema; unset: an error",
    )
    reasoning: bool = Field(default=False, description="Send reasoning and agent thoughts as reasoning_content")
    broadcast_model: str | None = Field(
        default=None,
        description="A model name that asks several bound apps at once and returns every answer "
        "(not the name of a bound app: the app would win and the broadcast model be off)",
    )
    broadcast_apps: list[str] | None = Field(default=None, description="Apps the broadcast model asks (default: all)")
    max_file_bytes: int = Field(
        default=15 * 1024 * 1024,
        ge=1,
        le=1024 * 1024 * 1024,
        description="Largest inline file (data: URL or file_data) uploaded to Dify, in bytes (default: Dify's 15 MB); "
        "the endpoint's max_body_bytes must leave room for it (base64 is 4/3 of the size)",
    )
    key_requests_per_minute: int | None = Field(default=None, ge=1, description="Per-key request limit")
    key_max_concurrent: int | None = Field(default=None, ge=1, description="Per-key concurrent request limit")

    @field_validator("api_key")
    @classmethod
    def _api_key(cls, value: str | None) -> str | None:
        if not value:
            return None
        if setting_hash(value) is not None:
            return value
        if value.startswith("app-"):
            raise ValueError("that looks like a Dify app key; clients get their own keys (leave empty to generate)")
        if len(value) < 20:
            raise ValueError("a key needs at least 20 characters (leave empty to generate one)")
        return "sha256:" + hash_key(value)

    @field_validator("broadcast_model")
    @classmethod
    def _broadcast(cls, value: str | None) -> str | None:
        if value is not None and not _NAME.fullmatch(value):
            raise ValueError("must be a model name: lower-case letters, digits, '.', '_' or '-'")
        return value
