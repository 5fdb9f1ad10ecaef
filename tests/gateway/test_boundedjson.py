"""The depth and size bounds of `gateway.security.boundedjson`, from a table."""

from __future__ import annotations

import json

import pytest

from gateway.exceptions import BadRequest, PayloadTooLarge
from gateway.security.boundedjson import MAX_JSON_DEPTH, check_json_bounds, loads


def nested(depth: int, open_: str = "[", close: str = "]") -> str:
    return open_ * depth + close * depth


@pytest.mark.parametrize(
    "text",
    [
        nested(MAX_JSON_DEPTH),
        nested(MAX_JSON_DEPTH, '{"a":', "}").replace(":}", ":1}"),
        '{"a": "' + "[" * 1000 + '"}',  # brackets in strings don't nest
        '["\\"' + "[" * 1000 + '"]',  # nor after an escaped quote
        '["\\\\", ' + nested(MAX_JSON_DEPTH - 1) + "]",  # an escaped backslash ends nothing
        "[" + "[]," * 10_000 + "[]]",  # wide, not deep
        '"' + "\\u005b" * 1000 + '"',
        "{}",
        "1",
    ],
)
def test_within_the_bounds(text: str) -> None:
    assert loads(text) == json.loads(text)
    assert loads(text.encode()) == json.loads(text)


@pytest.mark.parametrize(
    "text",
    [
        nested(MAX_JSON_DEPTH + 1),
        nested(100_000),  # json.loads itself would raise RecursionError
        '{"a":' * (MAX_JSON_DEPTH + 1) + "1" + "}" * (MAX_JSON_DEPTH + 1),
        '["\\\\", ' + nested(MAX_JSON_DEPTH) + "]",
        '["\\"]", ' + nested(MAX_JSON_DEPTH) + "]",
        "[" * (MAX_JSON_DEPTH + 1),  # unbalanced
    ],
)
def test_too_deep(text: str) -> None:
    with pytest.raises(BadRequest, match=f"deeper than {MAX_JSON_DEPTH} levels"):
        loads(text)


@pytest.mark.parametrize(
    "data",
    [b"{not json", b"", b"\xff\xfe", b'{"a": 1', b"NaN-ish", b'"\\', b'"' + b'\\"' * 10_000],
)
def test_not_json(data: bytes) -> None:
    with pytest.raises(BadRequest, match="not valid JSON"):
        loads(data)


def test_size_bound() -> None:
    check_json_bounds(b"[1]", max_bytes=3)
    with pytest.raises(PayloadTooLarge):
        check_json_bounds(b"[1] ", max_bytes=3)
    with pytest.raises(PayloadTooLarge):
        loads("[" + "1," * 10 + "1]", max_bytes=10)


def test_depth_is_configurable() -> None:
    assert loads("[[1]]", max_depth=2) == [[1]]
    with pytest.raises(BadRequest):
        loads("[[[1]]]", max_depth=2)
