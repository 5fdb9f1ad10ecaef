"""Typed models of a Dify plugin's declarations: `manifest.yaml`, the endpoint group YAML and the
endpoint YAML files, as the SDK (`dify_plugin.entities`) and the daemon (`plugin_entities`) read them.

Unknown keys are kept out of the models but never refused: a newer SDK may add some. What the
gateway relies on is checked here, with messages that name the file and the field.
"""

from __future__ import annotations

import re
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from gateway.exceptions import BadRequest

__all__ = [
    "EXTENSION_KINDS",
    "REVERSE_CALL_KINDS",
    "EndpointDeclaration",
    "EndpointGroup",
    "InvalidPackage",
    "Manifest",
    "Permissions",
    "SettingDeclaration",
    "parse_model",
]

# The daemon's own rules (plugin_entities.AuthorRegex / PluginNameRegex).
AUTHOR = re.compile(r"[a-z0-9_-]{1,64}")
NAME = re.compile(r"[a-z0-9_-]{1,128}")
# manifest_entities.VERSION_PATTERN, `\d{1,4}(\.\d{1,4}){2}(-\w{1,16})?`, with Go's ASCII-only classes.
VERSION = re.compile(r"[0-9]{1,4}(\.[0-9]{1,4}){2}(-[0-9A-Za-z_]{1,16})?")
METHODS = ("HEAD", "GET", "POST", "PUT", "DELETE", "OPTIONS")
# What `plugins:` may list besides endpoints; the gateway serves endpoints only.
EXTENSION_KINDS = ("tools", "models", "agent_strategies", "datasources", "triggers")
# Every kind of reverse call the SDK can make, by the name it sends as `invoke.type`.
REVERSE_CALL_KINDS = (
    "app",
    "fetch_app",
    "storage",
    "tool",
    "llm",
    "text_embedding",
    "rerank",
    "tts",
    "speech2text",
    "moderation",
    "node",
)
MODEL_KINDS = ("llm", "text_embedding", "rerank", "tts", "speech2text", "moderation")
MIN_STORAGE, MAX_STORAGE = 1024, 1024**3  # the daemon's bounds on storage.size

_M = TypeVar("_M", bound=BaseModel)


class InvalidPackage(BadRequest):
    """A plugin package (or plugin directory) that cannot be read, or whose declarations are wrong."""

    code = "invalid_package"


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _Switch(_Model):
    enabled: bool = False


class ModelPermission(_Model):
    enabled: bool = False
    llm: bool = False
    text_embedding: bool = False
    rerank: bool = False
    tts: bool = False
    speech2text: bool = False
    moderation: bool = False


class StoragePermission(_Model):
    enabled: bool = False
    size: int = 0  # bytes of key-value storage the plugin may hold

    @field_validator("size")
    @classmethod
    def _bounded(cls, value: int) -> int:
        if value and not MIN_STORAGE <= value <= MAX_STORAGE:
            raise ValueError(f"storage.size must be between {MIN_STORAGE} and {MAX_STORAGE} bytes")
        return value


class Permissions(_Model):
    """`resource.permission`: what the plugin may ask of its host. Nothing declared, nothing granted."""

    endpoint: _Switch = Field(default_factory=_Switch)
    app: _Switch = Field(default_factory=_Switch)
    storage: StoragePermission = Field(default_factory=StoragePermission)
    tool: _Switch = Field(default_factory=_Switch)
    model: ModelPermission = Field(default_factory=ModelPermission)
    node: _Switch = Field(default_factory=_Switch)

    def allows(self, kind: str) -> bool:
        """Whether the plugin declared the reverse-call `kind` (`app`, `fetch_app`, `storage`, `llm`, …)."""
        if kind in ("app", "fetch_app"):
            return self.app.enabled
        if kind == "storage":
            return self.storage.enabled and self.storage.size > 0
        if kind == "tool":
            return self.tool.enabled
        if kind == "node":
            return self.node.enabled
        if kind in MODEL_KINDS:
            return self.model.enabled and bool(getattr(self.model, kind))
        return False

    def declared(self) -> list[str]:
        """The declared permissions as short names, for listings: `endpoint`, `app`, `storage:1048576`, `llm`…"""
        out = [name for name in ("endpoint", "app", "tool", "node") if getattr(self, name).enabled]
        if self.storage.enabled:
            out.append(f"storage:{self.storage.size}")
        if self.model.enabled:
            out += [kind for kind in MODEL_KINDS if getattr(self.model, kind)] or ["model"]
        return sorted(out)


class Resource(_Model):
    memory: int = 0
    permission: Permissions = Field(default_factory=Permissions)

    @field_validator("permission", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return {} if value is None else value


class Runner(_Model):
    language: Literal["python"]
    version: str
    entrypoint: str = "main"


class Meta(_Model):
    version: str = ""
    arch: list[str] = Field(default_factory=list)
    runner: Runner
    minimum_dify_version: str | None = None


class Extensions(_Model):
    endpoints: list[str] = Field(default_factory=list)
    tools: list[str] = Field(default_factory=list)
    models: list[str] = Field(default_factory=list)
    agent_strategies: list[str] = Field(default_factory=list)
    datasources: list[str] = Field(default_factory=list)
    triggers: list[str] = Field(default_factory=list)

    @field_validator("*", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value


class Manifest(_Model):
    """`manifest.yaml` of a plugin."""

    version: str
    type: Literal["plugin"]
    author: str
    name: str
    label: dict[str, str] = Field(default_factory=dict)
    description: dict[str, str] = Field(default_factory=dict)
    icon: str = ""
    resource: Resource = Field(default_factory=Resource)
    plugins: Extensions = Field(default_factory=Extensions)
    meta: Meta

    @field_validator("author")
    @classmethod
    def _author(cls, value: str) -> str:
        if not AUTHOR.fullmatch(value):
            raise ValueError("author must match ^[a-z0-9_-]{1,64}$")
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME.fullmatch(value):
            raise ValueError("name must match ^[a-z0-9_-]{1,128}$")
        return value

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, value: Any) -> Any:
        if not isinstance(value, str) or not VERSION.fullmatch(value):
            raise ValueError("version must look like 1.2.3 (or 1.2.3-beta)")
        return value

    @property
    def key(self) -> str:
        """`author/name`: what endpoints are bound to, stable across versions."""
        return f"{self.author}/{self.name}"

    @property
    def permissions(self) -> Permissions:
        return self.resource.permission

    def unserved(self) -> list[str]:
        """The extension kinds the package declares that the gateway does not serve (tools, models…)."""
        return [kind for kind in EXTENSION_KINDS if getattr(self.plugins, kind)]


class SettingDeclaration(_Model):
    """One field of an endpoint group's settings form (the SDK's `ProviderConfig`)."""

    name: str
    type: str
    required: bool = False
    default: str | int | float | bool | list[Any] | None = None
    options: list[dict[str, Any]] | None = None
    label: dict[str, str] | None = None
    help: dict[str, str] | None = None
    placeholder: dict[str, str] | None = None
    scope: str | None = None


class PythonSource(_Model):
    source: str


class EndpointExtra(_Model):
    python: PythonSource


class EndpointDeclaration(_Model):
    """One endpoint file: a werkzeug path rule, one method, and the module holding its `Endpoint`."""

    path: str
    method: str
    hidden: bool = False
    extra: EndpointExtra

    @field_validator("method")
    @classmethod
    def _method(cls, value: str) -> str:
        if value.upper() not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}")
        return value.upper()

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("path must start with /")
        return value


class EndpointGroup(_Model):
    """An endpoint group file: the settings form of each endpoint instance and its endpoints.

    `endpoint_files` are the files the group names (read by the package reader into `endpoints`);
    declarations written inline are in `endpoints` directly.
    """

    settings: list[SettingDeclaration] = Field(default_factory=list)
    endpoint_files: list[str] = Field(default_factory=list)
    endpoints: list[EndpointDeclaration] = Field(default_factory=list)

    @classmethod
    def from_yaml_data(cls, data: Any, where: str) -> EndpointGroup:
        """The group from its parsed YAML; `endpoints:` may list file names or inline declarations."""
        if not isinstance(data, dict):
            raise InvalidPackage(f"{where}: expected a mapping")
        listed = data.get("endpoints") or []
        if not isinstance(listed, list):
            raise InvalidPackage(f"{where}: endpoints must be a list")
        files = [item for item in listed if isinstance(item, str)]
        inline = [item for item in listed if not isinstance(item, str)]
        return parse_model(
            cls, {"settings": data.get("settings") or [], "endpoint_files": files, "endpoints": inline}, where
        )


def parse_model(model: type[_M], data: Any, where: str) -> _M:
    """`data` as `model`, or `InvalidPackage` naming the file and each wrong field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}" for err in exc.errors(include_url=False)
        )
        raise InvalidPackage(f"{where}: {problems}") from None
