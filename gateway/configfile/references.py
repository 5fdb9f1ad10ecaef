"""`${VAR}` references: how a file names a secret it does not hold, and how apply fills them in.

Export names each secret after what it belongs to (`APP_SUPPORT_KEY`, `EP_0123456789ABCDEF_SECRET`;
an app key of a workspace other than `default` is prefixed with it: `TEAM_A_APP_SUPPORT_KEY`),
so the same gateway always exports the same names. Apply resolves a value that is exactly
`${NAME}` from the variables it is given (the environment, or a snapshot's sealed secrets); a
missing variable refuses the whole file. Any other value is taken as written.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = ["MissingVariable", "app_key_variable", "endpoint_variable", "reference", "resolve"]

_REFERENCE = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]{0,127})\}$")
_NOT_NAME = re.compile(r"[^A-Z0-9]+")


class MissingVariable(LookupError):
    """A `${VAR}` the variables don't define."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def _upper(text: str) -> str:
    return _NOT_NAME.sub("_", text.upper()).strip("_")


def app_key_variable(app: str, workspace: str = "default") -> str:
    """`APP_SUPPORT_KEY`; in another workspace than `default` (where app names repeat), `TEAM_A_APP_SUPPORT_KEY`."""
    name = f"APP_{_upper(app)}_KEY"
    return name if workspace == "default" else f"{_upper(workspace)}_{name}"


def endpoint_variable(endpoint_id: str, setting: str) -> str:
    return f"{_upper(endpoint_id)}_{_upper(setting)}"


def reference(name: str) -> str:
    return "${" + name + "}"


def resolve(value: str, variables: Mapping[str, str]) -> str:
    """`value` with a whole-value `${NAME}` replaced by the variable (`MissingVariable` if unset)."""
    match = _REFERENCE.match(value)
    if match is None:
        return value
    name = match.group(1)
    found = variables.get(name)
    if found is None or found == "":
        raise MissingVariable(name)
    return found
