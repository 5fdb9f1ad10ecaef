"""Reading a configuration file with the line of every value, and writing one deterministically.

`read` parses YAML into a `ConfigFile` and turns every problem (bad YAML, a duplicate key, an
alias, a value the schema refuses) into one `ValidationFailed` listing each field with its line,
so a malformed file is refused whole. `write` sorts keys and lists (apps by name, endpoints by
id): the same configuration is always the same bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import ValidationError

from gateway.configfile.model import ConfigFile
from gateway.exceptions import ValidationFailed

__all__ = ["MAX_FILE_BYTES", "Parsed", "error", "failed", "read", "write"]

MAX_FILE_BYTES = 16 * 1024 * 1024
Path = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Parsed:
    """A valid file and where its values are: `line(("endpoints", 0, "settings"))`."""

    config: ConfigFile
    lines: dict[Path, int] = field(default_factory=dict)

    def line(self, path: Path) -> int | None:
        return _line(self.lines, path)


def write(config: ConfigFile) -> str:
    """The file's text: keys sorted, apps by name, endpoints by id, block style."""
    data = config.model_dump(mode="json")
    data["apps"] = sorted(data["apps"], key=lambda app: app["name"])
    data["endpoints"] = sorted(data["endpoints"], key=lambda endpoint: endpoint["id"])
    data["packages"] = sorted(data["packages"], key=lambda package: package["key"])
    text: str = yaml.safe_dump(data, sort_keys=True, default_flow_style=False, allow_unicode=True, width=120)
    return text


def read(text: str, *, source: str = "the file") -> Parsed:
    """Parse and validate `text`; `ValidationFailed` with `{field, line, message}` errors otherwise."""
    if len(text.encode()) > MAX_FILE_BYTES:
        raise ValidationFailed(f"{source} is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB")
    lines: dict[Path, int] = {}
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            data = {} if node is None else _value(loader, node, (), lines, set())
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "not valid YAML"
        raise failed(source, [{"field": "", "line": line, "message": problem}]) from None
    except yaml.YAMLError as exc:
        raise failed(source, [{"field": "", "line": None, "message": str(exc)}]) from None
    if not isinstance(data, dict):
        raise failed(source, [{"field": "", "line": 1, "message": "the file must be a mapping (version, apps, ...)"}])
    try:
        return Parsed(ConfigFile.model_validate_json(json.dumps(data, default=str), strict=True), lines)
    except ValidationError as exc:
        errors: list[dict[str, object]] = []
        for err in exc.errors():
            path = tuple(err["loc"])
            # Never echo the input: a refused value may be a secret.
            errors.append(error(path, err["msg"], _line(lines, path)))
        raise failed(source, errors) from None


def error(path: Path, message: str, line: int | None) -> dict[str, object]:
    """One problem of a file: the dotted field, its line (when known) and what is wrong."""
    return {"field": _dotted(path), "line": line, "message": message}


def failed(source: str, errors: list[dict[str, object]]) -> ValidationFailed:
    where = "; ".join(
        f"line {e['line']}: {e['field'] or 'file'}: {e['message']}" if e["line"] else f"{e['field']}: {e['message']}"
        for e in errors
    )
    return ValidationFailed(f"{source} is not a valid gateway configuration (nothing applied): {where}", errors=errors)


def _dotted(path: Path) -> str:
    return ".".join(str(part) for part in path)


def _line(lines: dict[Path, int], path: Path) -> int | None:
    """The line of the value at `path`, or of its nearest parent written in the file."""
    for end in range(len(path), -1, -1):
        line = lines.get(path[:end])
        if line is not None:
            return line
    return None


def _value(loader: yaml.SafeLoader, node: yaml.Node, path: Path, lines: dict[Path, int], seen: set[int]) -> Any:
    """The Python value of `node`, recording the line of it and of everything inside it."""
    if id(node) in seen:  # an alias: refused, so `*a` bombs can't blow up memory
        raise yaml.MarkedYAMLError(problem="anchors and aliases are not supported", problem_mark=node.start_mark)
    seen.add(id(node))
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node)
            if not isinstance(key, str | int | float | bool):
                raise yaml.MarkedYAMLError(problem="keys must be plain strings", problem_mark=key_node.start_mark)
            name = str(key)
            if name in out:
                raise yaml.MarkedYAMLError(problem=f"duplicate key {name!r}", problem_mark=key_node.start_mark)
            out[name] = _value(loader, value_node, (*path, name), lines, seen)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_value(loader, item, (*path, index), lines, seen) for index, item in enumerate(node.value)]
    return loader.construct_object(node)
