"""Structured answers from a Dify app: extract JSON, validate it, re-ask once, fall back.

One implementation for every plugin that wants JSON of a given shape (the openai plugin's
`response_format` / `text.format`, the webhook plugin's `response_schema`), re-exported by
`gateway.plugin`:

    outcome = await enforce(first_answer_text, schema, reask, fallback=...)

- `extract_json` finds the JSON in an answer: inside a Markdown code fence, after leading prose,
  before trailing prose, with trailing commas (`{"a": 1,}`) removed outside strings.
- `problems` validates it against a JSON Schema (Draft 2020-12) and lists every error with its
  path; `schema=None` asks only for a JSON object (`json_object` mode).
- `enforce` re-asks once through the caller's `reask(prompt)` (the caller keeps it in the same
  conversation) with the errors, then gives up: `Structured.ok` False, or the `fallback` value
  marked `fallback=True` when the caller has one.

Pure apart from awaiting `reask`; answers are untrusted (deep nesting, huge text are handled).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jsonschema

__all__ = [
    "NO_FALLBACK",
    "Structured",
    "enforce",
    "extract_json",
    "problems",
    "reask_prompt",
    "schema_error",
    "schema_instruction",
]

MAX_PROBLEMS = 8
_FENCE = re.compile(r"```[a-zA-Z0-9_-]*[ \t]*\n?(.*?)```", re.DOTALL)
NO_FALLBACK: Any = object()  # `enforce(..., fallback=NO_FALLBACK)`: fail instead of falling back


class _NotJSON(ValueError):
    pass


def _without_trailing_commas(text: str) -> str:
    """`text` with commas that directly precede `}` or `]` removed (never inside strings)."""
    out: list[str] = []
    in_string = escaped = False
    pending: list[str] = []  # a comma and the whitespace after it, held until we know what follows
    for char in text:
        if in_string:
            out.append(char)
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
            continue
        if pending:
            if char.isspace():
                pending.append(char)
                continue
            if char in "}]":
                pending = pending[1:]  # drop the comma, keep the layout
            out.extend(pending)
            pending = []
        if char == ",":
            pending = [char]
            continue
        if char == '"':
            in_string = True
        out.append(char)
    out.extend(pending)
    return "".join(out)


def _decode_at(text: str, start: int) -> Any:
    decoder = json.JSONDecoder()
    try:
        return decoder.raw_decode(text, start)[0]
    except ValueError:
        pass
    try:
        return decoder.raw_decode(_without_trailing_commas(text[start:]))[0]
    except ValueError:
        raise _NotJSON from None


def extract_json(text: str) -> Any:
    """The JSON value in an answer. Raises `ValueError` when there is none.

    Tried in order: each fenced code block, then the text itself from its first `{` or `[`
    (leading and trailing prose ignored); trailing commas are forgiven.
    """
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    for candidate in candidates:
        stripped = candidate.strip()
        starts = [i for i in (stripped.find("{"), stripped.find("[")) if i >= 0]
        if not stripped:
            continue
        # A bare scalar answer (`42`, `"yes"`) is JSON too, when it is the whole candidate.
        for start in sorted(starts) or [0]:
            try:
                return _decode_at(stripped, start)
            except (_NotJSON, RecursionError):
                continue
    raise ValueError("the answer holds no JSON")


def schema_error(schema: Mapping[str, Any]) -> str | None:
    """Why `schema` is not a valid JSON Schema (Draft 2020-12), or None when it is.

    Checking a schema against the metaschema costs about a millisecond, more than the rest of a
    request's work: results are memoized by the schema's JSON text (a pure function; bounded).
    """
    try:
        return _schema_error(json.dumps(schema, sort_keys=True))
    except (TypeError, ValueError, RecursionError):
        return "the schema is not JSON or is nested too deeply"


@functools.lru_cache(maxsize=256)
def _schema_error(text: str) -> str | None:
    try:
        jsonschema.Draft202012Validator.check_schema(json.loads(text))
    except jsonschema.SchemaError as exc:
        return str(exc.message)
    except RecursionError:
        return "the schema is nested too deeply"
    return None


def problems(data: Any, schema: Mapping[str, Any] | None) -> list[str]:
    """Why `data` does not satisfy `schema` (empty when it does); None = any JSON object."""
    if schema is None:
        return [] if isinstance(data, dict) else ["answer: the answer must be a JSON object"]
    try:
        validator = jsonschema.Draft202012Validator(schema)
        found = sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))
    except RecursionError:
        return ["answer: the answer is nested too deeply to check"]
    return [f"{'/'.join(map(str, e.absolute_path)) or 'answer'}: {e.message}" for e in found[:MAX_PROBLEMS]]


def schema_instruction(schema: Mapping[str, Any] | None) -> str:
    """What the app is told about the shape of its answer."""
    if schema is None:
        return "Answer with a single JSON object only: no prose, no Markdown code fence."
    return (
        "Answer with a single JSON value only (no prose, no Markdown code fence) that satisfies this JSON Schema:\n"
        + json.dumps(schema, ensure_ascii=False)
    )


def reask_prompt(errors: list[str], schema: Mapping[str, Any] | None) -> str:
    """The follow-up question after an answer that failed: what was wrong and what is wanted."""
    listed = "\n".join(f"- {error}" for error in errors)
    return f"Your previous answer was not valid:\n{listed}\n\n{schema_instruction(schema)}"


@dataclass(frozen=True, slots=True)
class Structured:
    """The outcome of `enforce`.

    `ok`: `data` is valid (or is the fallback, with `fallback=True`); `text` is `data` as JSON.
    Not `ok`: `data` is the last answer's JSON, if it had any. `errors`: what was wrong with the
    last answer when it failed. `attempts`: answers asked for.
    """

    ok: bool
    data: Any = None
    text: str = ""
    errors: tuple[str, ...] = ()
    attempts: int = 1
    fallback: bool = False


def _check(answer: str, schema: Mapping[str, Any] | None) -> tuple[Any, list[str]]:
    try:
        data = extract_json(answer)
    except ValueError:
        return None, ["answer: the answer is not JSON"]
    return data, problems(data, schema)


def _dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False)


async def enforce(
    answer: str,
    schema: Mapping[str, Any] | None,
    reask: Callable[[str], Awaitable[str]],
    *,
    fallback: Any = NO_FALLBACK,
) -> Structured:
    """Check `answer`; on failure re-ask once with the errors and check again; then fall back.

    `reask(prompt)` returns the app's next answer (the caller asks in the same conversation).
    Errors raised by `reask` propagate (the app failed, not the answer).
    """
    data, errors = _check(answer, schema)
    attempts = 1
    if errors:
        attempts = 2
        data, errors = _check(await reask(reask_prompt(errors, schema)), schema)
    if not errors:
        return Structured(True, data, _dumps(data), attempts=attempts)
    if fallback is not NO_FALLBACK:
        return Structured(True, fallback, _dumps(fallback), tuple(errors), attempts, fallback=True)
    return Structured(False, data, errors=tuple(errors), attempts=attempts)
