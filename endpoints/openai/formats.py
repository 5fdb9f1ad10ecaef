"""Requested output formats: chat's `response_format` and the Responses API's `text.format` (pure).

`{"type": "text"}` (or none) is plain text. `{"type": "json_object"}` asks for any JSON object;
`{"type": "json_schema", ...}` for JSON valid against a schema (Draft 2020-12; `strict` is
accepted: the gateway always enforces). How a format reaches the app (`instruct`): the schema as
an instruction appended to the question and, when the endpoint names a `schema_input`, as that
Dify input too. Enforcement is `gateway.plugin.enforce` (see `structured.py`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from typing import Any

from endpoints.openai.errors import OpenAIError
from endpoints.openai.settings import OpenAISettings
from endpoints.openai.translate import DifyCall
from gateway.plugin import NO_FALLBACK, schema_error, schema_instruction

__all__ = ["OutputFormat", "chat_format", "fallback_for", "instruct", "text_format"]

_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
MAX_SCHEMA_CHARS = 100_000


@dataclass(frozen=True, slots=True)
class OutputFormat:
    """A structured format: `schema` None means "any JSON object" (`json_object`)."""

    type: str  # "json_object" | "json_schema"
    schema: dict[str, Any] | None = None
    name: str = "response"
    strict: bool | None = None

    def as_text_format(self) -> dict[str, Any]:
        """As the Responses API echoes it in `text.format`."""
        if self.schema is None:
            return {"type": "json_object"}
        return {"type": "json_schema", "name": self.name, "schema": self.schema, "strict": self.strict}


def _bad(message: str, param: str) -> OpenAIError:
    return OpenAIError(400, message, param=param)


def _schema_format(spec: Any, param: str) -> OutputFormat:
    if not isinstance(spec, dict):
        raise _bad("json_schema must be an object with name and schema", param)
    name = spec.get("name", "response")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise _bad("name must be 1-64 letters, digits, '_' or '-'", f"{param}.name")
    schema = spec.get("schema")
    if not isinstance(schema, dict):
        raise _bad("schema must be a JSON Schema object", f"{param}.schema")
    if len(json.dumps(schema)) > MAX_SCHEMA_CHARS:
        raise _bad(f"the schema is over {MAX_SCHEMA_CHARS} characters", f"{param}.schema")
    error = schema_error(schema)
    if error is not None:
        raise _bad(f"not a valid JSON Schema: {error}", f"{param}.schema")
    strict = spec.get("strict")
    if strict is not None and not isinstance(strict, bool):
        raise _bad("strict must be a boolean", f"{param}.strict")
    return OutputFormat("json_schema", schema, name, strict)


def _format(value: Any, param: str, *, nested: bool) -> OutputFormat | None:
    if value is None:
        return None
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return OutputFormat("json_object")
    if kind == "json_schema":
        # chat nests the spec under "json_schema"; the Responses API puts it beside "type".
        return _schema_format(
            value.get("json_schema") if nested else value, f"{param}.json_schema" if nested else param
        )
    raise _bad("type must be text, json_object or json_schema", f"{param}.type")


def chat_format(body: dict[str, Any]) -> OutputFormat | None:
    """The chat completion's `response_format` (None for plain text)."""
    return _format(body.get("response_format"), "response_format", nested=True)


def text_format(body: dict[str, Any]) -> OutputFormat | None:
    """The Responses API's `text.format` (None for plain text)."""
    text = body.get("text")
    if text is None:
        return None
    if not isinstance(text, dict):
        raise _bad("text must be an object", "text")
    return _format(text.get("format"), "text.format", nested=False)


def instruct(dify: DifyCall, fmt: OutputFormat, *, settings: OpenAISettings) -> DifyCall:
    """`dify` with the format's instruction after the question (and the schema in `schema_input`)."""
    instruction = schema_instruction(fmt.schema)
    inputs = dict(dify.inputs)
    if settings.schema_input:
        inputs[settings.schema_input] = json.dumps(fmt.schema or {"type": "object"}, ensure_ascii=False)
    # A Workflow/Completion app gets the query in its own input (`ctx.apps` puts it there).
    return replace(dify, query=f"{dify.query}\n\n{instruction}", inputs=inputs)


def fallback_for(settings: OpenAISettings, fmt: OutputFormat) -> Any:
    """The endpoint's fallback value for `fmt` (by schema name, else "*"), or `NO_FALLBACK`."""
    values = settings.structured_fallback or {}
    if fmt.name in values:
        return values[fmt.name]
    return values.get("*", NO_FALLBACK)
