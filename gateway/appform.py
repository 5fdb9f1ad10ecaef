"""What an app's `GET /parameters` says about its inputs and output moderation (pure).

Workflow and Completion apps take the user's text in an input variable that the app names itself
(`question`, `text`, ...), declared in `user_input_form` (dify-api.md §2.7). An endpoint setting
`query_input` names it; without one the app's own text input is used: the one required
`text-input`/`paragraph`, else the first of them. `sensitive_word_avoidance` tells whether Dify
moderates the output, in which case a streamed answer may be replaced at the end (`message_replace`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "INPUT_MODES",
    "TEXT_TYPES",
    "InputField",
    "binding_problem",
    "default_text_input",
    "describe_inputs",
    "output_moderation",
    "parse_form",
    "query_input_for",
]

# Apps without a `query` field of their own: the text goes into an input variable.
INPUT_MODES = frozenset({"workflow", "completion"})
TEXT_TYPES = ("text-input", "paragraph")
MAX_FIELDS = 200


@dataclass(frozen=True, slots=True)
class InputField:
    """One variable of the app's input form."""

    variable: str
    type: str
    required: bool = False
    label: str = ""

    def to_doc(self) -> dict[str, Any]:
        return {"variable": self.variable, "type": self.type, "required": self.required, "label": self.label}

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> InputField:
        return cls(str(doc["variable"]), str(doc["type"]), bool(doc.get("required")), str(doc.get("label") or ""))


def parse_form(user_input_form: Any) -> tuple[InputField, ...]:
    """`user_input_form` (a list of `{type: {variable, label, required, ...}}`); malformed items skipped."""
    fields: list[InputField] = []
    for item in user_input_form if isinstance(user_input_form, list) else ():
        if not isinstance(item, dict) or len(item) != 1:
            continue
        ((kind, spec),) = item.items()
        variable = spec.get("variable") if isinstance(spec, dict) else None
        if not isinstance(kind, str) or not isinstance(variable, str) or not variable:
            continue
        label = spec.get("label")
        fields.append(InputField(variable, kind, spec.get("required") is True, label if isinstance(label, str) else ""))
    return tuple(fields[:MAX_FIELDS])


def output_moderation(sensitive_word_avoidance: Any) -> bool:
    """Whether Dify moderates the app's output. Enabled moderation without an `outputs_config`
    counts as moderating: buffering a few answers needlessly beats leaking moderated text."""
    if not isinstance(sensitive_word_avoidance, dict) or sensitive_word_avoidance.get("enabled") is not True:
        return False
    config = sensitive_word_avoidance.get("config")
    outputs = config.get("outputs_config") if isinstance(config, dict) else None
    if isinstance(outputs, dict) and "enabled" in outputs:
        return outputs.get("enabled") is True
    return True


def default_text_input(fields: Sequence[InputField]) -> str | None:
    """The app's text input: the one required text-input/paragraph, else the first of them."""
    texts = [f for f in fields if f.type in TEXT_TYPES]
    required = [f for f in texts if f.required]
    if len(required) == 1:
        return required[0].variable
    return texts[0].variable if texts else None


def query_input_for(fields: Sequence[InputField] | None, setting: str | None) -> str:
    """The variable that receives the text: `setting` when the app has it (or its form is not
    known), else the app's text input; "query" when neither says (Dify's legacy name)."""
    if setting and (fields is None or any(f.variable == setting for f in fields)):
        return setting
    return (default_text_input(fields) if fields is not None else None) or setting or "query"


def describe_inputs(fields: Sequence[InputField]) -> str:
    """The form as one line for error messages: `question (paragraph, required), lang (select)`."""
    if not fields:
        return "no inputs at all"
    return ", ".join(f"{f.variable} ({f.type}{', required' if f.required else ''})" for f in fields)


def binding_problem(app: str, mode: str, fields: Sequence[InputField] | None, setting: str | None) -> str | None:
    """Why a Workflow/Completion app can't take the user's text on an endpoint, or None when it can.

    An app whose form is unknown (Dify was not reachable) passes: the text then goes to `setting`
    or "query", and Dify says what is missing.
    """
    if mode not in INPUT_MODES or fields is None:
        return None
    if setting and not any(f.variable == setting for f in fields):
        return (
            f"app {app!r} has no input {setting!r} (query_input); its inputs: {describe_inputs(fields)}. "
            "Set query_input to one of them, or leave it out to use the app's text input"
        )
    if not setting and default_text_input(fields) is None:
        return (
            f"{mode} app {app!r} has no text input to put the user's message in; its inputs: "
            f"{describe_inputs(fields)}. Add a text or paragraph input to the app in Dify "
            "(then run `dify-gateway apps check`), or name one with the query_input setting"
        )
    return None
