"""The structured-answer enforcement shared by plugins: extraction, validation, re-ask, fallback."""

from __future__ import annotations

import pytest

from gateway.plugin import NO_FALLBACK, enforce, extract_json, problems, schema_error

pytestmark = pytest.mark.anyio

PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
    "additionalProperties": False,
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": 1}', {"a": 1}),
        ('Sure! Here it is:\n```json\n{"a": [1, 2,],}\n```\nAnything else?', {"a": [1, 2]}),
        ('The data: {"a": "x, }"} -- hope that helps', {"a": "x, }"}),
        ('[note] then {"a": {"b": [true,\n ],\n},}', {"a": {"b": [True]}}),
        ("```\n[1, 2]\n```", [1, 2]),
        ("42", 42),
        ('{"s": "a,]"  ,  }', {"s": "a,]"}),
    ],
)
def test_extract_json_forgives_fences_prose_and_trailing_commas(text: str, expected: object) -> None:
    assert extract_json(text) == expected


@pytest.mark.parametrize("text", ["", "no json here", "{broken", "[" * 100_000])
def test_extract_json_refuses_what_is_not_json(text: str) -> None:
    with pytest.raises(ValueError):
        extract_json(text)


def test_problems_name_the_paths() -> None:
    assert problems({"name": "Ann", "age": 3}, PERSON) == []
    found = problems({"name": 5, "extra": 1}, PERSON)
    assert any(p.startswith("answer: 'age' is a required property") for p in found)
    assert "name: 5 is not of type 'string'" in found
    assert problems([1], None) == ["answer: the answer must be a JSON object"]
    assert problems({}, None) == []


async def test_a_valid_first_answer_is_not_reasked() -> None:
    async def reask(prompt: str) -> str:
        raise AssertionError("no re-ask for a valid answer")

    outcome = await enforce('```json\n{"name": "Ann", "age": 3,}\n```', PERSON, reask)
    assert outcome.ok and outcome.data == {"name": "Ann", "age": 3} and outcome.attempts == 1
    assert outcome.text == '{"name": "Ann", "age": 3}' and not outcome.fallback


async def test_a_bad_answer_is_reasked_once_with_the_errors() -> None:
    prompts: list[str] = []

    async def reask(prompt: str) -> str:
        prompts.append(prompt)
        return '{"name": "Ann", "age": 3}'

    outcome = await enforce('{"name": "Ann"}', PERSON, reask)
    assert outcome.ok and outcome.attempts == 2 and outcome.data == {"name": "Ann", "age": 3}
    assert len(prompts) == 1 and "'age' is a required property" in prompts[0] and '"required"' in prompts[0]


async def test_two_bad_answers_fail_or_fall_back() -> None:
    async def reask(prompt: str) -> str:
        return "still not json"

    failed = await enforce("nope", PERSON, reask, fallback=NO_FALLBACK)
    assert not failed.ok and failed.errors == ("answer: the answer is not JSON",) and failed.attempts == 2
    fallen = await enforce("nope", PERSON, reask, fallback={"name": "?", "age": 0})
    assert fallen.ok and fallen.fallback and fallen.data == {"name": "?", "age": 0}
    assert fallen.errors == ("answer: the answer is not JSON",)


@pytest.mark.parametrize("depth", [300, 5000])
async def test_a_deeply_nested_answer_is_an_error_not_a_crash(depth: int) -> None:
    # A RecursionError here failed the webhook job, which then asked Dify again on every retry.
    schema = {"type": "array", "items": {"$ref": "#"}}

    async def reask(prompt: str) -> str:
        return "[" * depth + "]" * depth

    outcome = await enforce("[" * depth + "]" * depth, schema, reask)
    assert not outcome.ok and outcome.errors


def test_schema_errors_are_named_and_remembered() -> None:
    assert schema_error(PERSON) is None
    assert schema_error({"type": 5}) is not None
    assert schema_error({"type": 5}) == schema_error({"type": 5})
