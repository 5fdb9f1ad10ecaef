"""Helpers for a plugin's settings model: fields every plugin spells the same, and which are secret."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, SecretStr

__all__ = ["current_secret", "query_input_setting", "secret_fields"]


def query_input_setting() -> Any:
    """The `query_input` field of a plugin's settings model, the same in every plugin:
    `query_input: str | None = query_input_setting()`. The gateway reads it (see `AppInfo.query_input`)."""
    return Field(
        default=None,
        min_length=1,
        max_length=128,
        description="Input variable of Workflow/Completion apps that receives the user's text "
        "(default: the app's text input, read from GET /parameters)",
    )


def secret_fields(model: type[BaseModel]) -> frozenset[str]:
    """Names of the fields typed as `SecretStr` (optional or not): encrypted at rest, masked on read."""
    names = set()
    for name, info in model.model_fields.items():
        annotation = info.annotation
        args = getattr(annotation, "__args__", ())
        if annotation is SecretStr or SecretStr in args:
            names.add(name)
    return frozenset(names)


def current_secret(settings: BaseModel, setting: str) -> tuple[str, ...]:
    """The value of the secret `setting` as the settings hold it (empty when unset or not a secret):
    what `Context.secrets` starts from before a rotation's earlier values."""
    value = getattr(settings, setting, None)
    return (value.get_secret_value(),) if isinstance(value, SecretStr) else ()
