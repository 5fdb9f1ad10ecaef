"""A Dify endpoint group's settings form as the gateway serves it: a list of `SettingsField`s and the
check of one endpoint's values against it.

Types served: `secret-input` (encrypted and masked by the endpoint records like every plugin secret),
`text-input`, `select`, `boolean` and `app-selector`. An app-selector's value is the NAME of one of
the endpoint's bound apps (the only bound app when left out); the runtime hands the plugin
`{"app_id": ...}` for it, as Dify does. Other types (`model-selector`, `array[tools]`, …) need Dify
itself and are refused when the package is read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from gateway.difyplugins.manifest import EndpointGroup, InvalidPackage, SettingDeclaration
from gateway.exceptions import ValidationFailed

__all__ = ["FIELD_TYPES", "FieldType", "SettingsField", "secret_fields", "settings_form", "validate_settings"]

FieldType = Literal["secret-input", "text-input", "select", "boolean", "app-selector"]
FIELD_TYPES: tuple[FieldType, ...] = ("secret-input", "text-input", "select", "boolean", "app-selector")
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off", ""})


@dataclass(frozen=True, slots=True)
class SettingsField:
    """One field of the form: `options` are a select's allowed values, `label` its English label."""

    name: str
    type: FieldType
    required: bool = False
    default: str | bool | None = None
    options: tuple[str, ...] = ()
    label: str = ""

    @property
    def secret(self) -> bool:
        return self.type == "secret-input"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "required": self.required,
            "default": self.default,
            "options": list(self.options),
            "label": self.label,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SettingsField:
        return cls(
            name=data["name"],
            type=data["type"],
            required=bool(data.get("required", False)),
            default=data.get("default"),
            options=tuple(data.get("options") or ()),
            label=data.get("label", ""),
        )


def _label(text: Mapping[str, str] | None, fallback: str) -> str:
    if not text:
        return fallback
    return text.get("en_US") or next(iter(text.values()), fallback)


def _field(decl: SettingDeclaration, where: str) -> SettingsField:
    if decl.type not in FIELD_TYPES:
        raise InvalidPackage(
            f"{where}: setting {decl.name!r} is of type {decl.type!r}, which the gateway cannot serve outside Dify "
            f"(served: {', '.join(FIELD_TYPES)})"
        )
    kind: FieldType = decl.type
    options = tuple(str(o.get("value")) for o in decl.options or () if isinstance(o, dict) and "value" in o)
    if kind == "select" and not options:
        raise InvalidPackage(f"{where}: select setting {decl.name!r} has no options")
    default: str | bool | None = None
    if decl.default is not None and decl.default != "":
        if kind == "boolean":
            parsed = _boolean(decl.default)
            if parsed is None:
                raise InvalidPackage(f"{where}: boolean setting {decl.name!r} has default {decl.default!r}")
            default = parsed
        elif kind != "app-selector":  # an app id from someone else's Dify means nothing here
            default = str(decl.default)
    if kind == "select" and default is not None and default not in options:
        raise InvalidPackage(f"{where}: the default of select setting {decl.name!r} is not one of its options")
    return SettingsField(decl.name, kind, decl.required, default, options, _label(decl.label, decl.name))


def settings_form(group: EndpointGroup, where: str = "endpoint group") -> tuple[SettingsField, ...]:
    """The group's settings as `SettingsField`s.

    Raises:
        InvalidPackage: a field of a type the gateway does not serve, two fields with one name, a
            select without options or with a default outside them.
    """
    fields = tuple(_field(decl, where) for decl in group.settings)
    names = [f.name for f in fields]
    if len(set(names)) != len(names):
        raise InvalidPackage(f"{where}: two settings share a name")
    return fields


def secret_fields(form: Iterable[SettingsField]) -> frozenset[str]:
    """The names of the form's secret fields (stored encrypted, shown masked)."""
    return frozenset(f.name for f in form if f.secret)


def _boolean(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    return None


def _check(field: SettingsField, value: Any, apps: Sequence[str]) -> tuple[Any, str | None]:
    """The stored form of `value` for `field`, or a problem."""
    if field.type == "boolean":
        parsed = _boolean(value)
        return (parsed, None) if parsed is not None else (None, "must be true or false")
    if field.type == "app-selector":
        if isinstance(value, Mapping):  # Dify's own shape, {"app_id": ...}
            value = value.get("app_id")
        if not isinstance(value, str) or value not in apps:
            bound = ", ".join(apps) or "none"
            return None, f"must name one of the endpoint's apps (bound: {bound})"
        return value, None
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return None, "must be a string"
    if field.type == "select" and value not in field.options:
        return None, f"must be one of {', '.join(field.options)}"
    if field.required and not value:
        return None, "is required"
    return value, None


def validate_settings(
    form: Sequence[SettingsField], values: Mapping[str, Any], *, apps: Sequence[str]
) -> dict[str, Any]:
    """`values` checked against `form`, defaults filled in; secrets are returned in plain text, for the
    endpoint records to encrypt.

    Args:
        form: the plugin's settings form.
        values: what the operator set (`--set NAME=VALUE` or the admin API's `settings`).
        apps: the names of the endpoint's bound apps, for app-selector fields.

    Raises:
        ValidationFailed: with one `{"field", "message"}` per problem; never the value of a secret.
    """
    known = {f.name for f in form}
    errors: list[dict[str, object]] = [
        {"field": name, "message": "is not a setting of this plugin"} for name in values if name not in known
    ]
    out: dict[str, Any] = {}
    for field in form:
        value = values.get(field.name)
        if value is None:
            if field.type == "app-selector" and len(apps) == 1:
                value = apps[0]
            elif field.default is not None:
                value = field.default
            elif field.required:
                errors.append({"field": field.name, "message": "is required"})
                continue
            else:
                continue
        stored, problem = _check(field, value, apps)
        if problem is not None:
            errors.append({"field": field.name, "message": problem})
        else:
            out[field.name] = stored
    if errors:
        raise ValidationFailed("the settings do not fit the plugin's settings form", errors=errors)
    return out
