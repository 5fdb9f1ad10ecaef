"""What turns one `State` into another: the changes `apply` makes, `--dry-run` prints and
`snapshot diff` shows. Pure: it compares values and never reads the gateway.

A change names the fields that differ, never their values (a secret that changed is shown as
`settings.secret`, nothing more). A desired app without a key, or an endpoint setting the file
left out because it is a secret, means "keep what is there" and is no change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from gateway.configfile.model import AppState, EndpointState, Limits, State

__all__ = ["Change", "diff"]

Action = Literal["create", "update", "delete"]
_SYMBOL = {"create": "+", "update": "~", "delete": "-"}


@dataclass(frozen=True, slots=True)
class Change:
    action: Action
    kind: Literal["app", "endpoint"]
    key: str  # the app's name or the endpoint's id
    fields: tuple[str, ...] = ()

    def describe(self) -> str:
        detail = f" ({', '.join(self.fields)})" if self.fields else ""
        return f"{_SYMBOL[self.action]} {self.action} {self.kind} {self.key}{detail}"

    def to_dict(self) -> dict[str, object]:
        return {"action": self.action, "kind": self.kind, "key": self.key, "fields": list(self.fields)}


def _app_fields(current: AppState, desired: AppState) -> tuple[str, ...]:
    fields = [name for name in ("base_url", "mode", "fallback") if getattr(current, name) != getattr(desired, name)]
    if desired.api_key is not None and desired.api_key != current.api_key:
        fields.append("api_key")
    return tuple(fields)


def _endpoint_fields(current: EndpointState, desired: EndpointState) -> tuple[str, ...]:
    fields = [
        name for name in ("name", "plugin", "apps", "enabled") if getattr(current, name) != getattr(desired, name)
    ]
    for name in sorted(Limits.model_fields):
        if getattr(current.limits, name) != getattr(desired.limits, name):
            fields.append(f"limits.{name}")
    for name in sorted(current.settings.keys() | desired.settings.keys()):
        if name not in desired.settings and name in desired.secret_fields:
            continue  # a secret the file leaves out stays as it is
        if current.settings.get(name) != desired.settings.get(name):
            fields.append(f"settings.{name}")
    return tuple(fields)


def diff(current: State, desired: State, *, prune: bool) -> list[Change]:
    """The changes that make `current` match `desired`; with `prune`, what `desired` lacks is deleted.
    Order: apps created or changed, endpoints created or changed, endpoints deleted, apps deleted."""
    changes: list[Change] = []
    for name in sorted(desired.apps):
        if name not in current.apps:
            changes.append(Change("create", "app", name))
        elif fields := _app_fields(current.apps[name], desired.apps[name]):
            changes.append(Change("update", "app", name, fields))
    for endpoint_id in sorted(desired.endpoints):
        if endpoint_id not in current.endpoints:
            changes.append(Change("create", "endpoint", endpoint_id))
        elif fields := _endpoint_fields(current.endpoints[endpoint_id], desired.endpoints[endpoint_id]):
            changes.append(Change("update", "endpoint", endpoint_id, fields))
    if prune:
        changes += [
            Change("delete", "endpoint", i) for i in sorted(current.endpoints.keys() - desired.endpoints.keys())
        ]
        changes += [Change("delete", "app", name) for name in sorted(current.apps.keys() - desired.apps.keys())]
    return changes
