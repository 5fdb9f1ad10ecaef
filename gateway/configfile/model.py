"""The schema of `gateway.yaml` and `State`, what a file says once its references are resolved.

A file lists apps by name and endpoints by id (the id keeps the endpoint's URL). Secrets in it are
`${VAR}` references (resolved from the environment on apply) or left out (the gateway keeps what it
has). Every model forbids unknown keys: a typo is an error with its line, never a silent default.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway.records.apps import APP_MODES, DEFAULT_BASE_URL, NAME_PATTERN

__all__ = [
    "VERSION",
    "AppSpec",
    "AppState",
    "ConfigFile",
    "EndpointSpec",
    "EndpointState",
    "Limits",
    "PackageSpec",
    "State",
]

VERSION = 1
ENDPOINT_ID_PATTERN = r"^ep_[0-9a-f]{16}$"
MODE_PATTERN = "^(" + "|".join(APP_MODES) + ")$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class AppSpec(_Strict):
    name: str = Field(pattern=NAME_PATTERN)
    base_url: str = Field(default=DEFAULT_BASE_URL, pattern=r"^\s*https?://", max_length=2048)
    mode: str = Field(pattern=MODE_PATTERN)
    fallback: str | None = None
    api_key: str | None = Field(default=None, min_length=1, max_length=512, description="${VAR}; omitted: kept")


class Limits(_Strict):
    rate_limit_per_minute: int | None = Field(default=None, ge=0)
    log_bodies: bool = False
    max_body_bytes: int | None = Field(default=None, ge=1, le=64 * 1024 * 1024)


class EndpointSpec(_Strict):
    id: str = Field(pattern=ENDPOINT_ID_PATTERN)
    name: str = Field(default="", max_length=200)
    plugin: str = Field(min_length=1)
    apps: tuple[str, ...] = ()
    enabled: bool = True
    settings: dict[str, Any] = Field(default_factory=dict)
    limits: Limits = Limits()
    url_token: str | None = Field(default=None, description="${VAR}: the URL to give a created endpoint")


class PackageSpec(_Strict):
    """An installed Dify plugin package the configuration needs (apply checks it, never installs it)."""

    key: str = Field(pattern=r"^[^/\s]+/[^/\s]+$", description="author/name")
    identity: str = Field(min_length=1, max_length=512, description="author/name:version@checksum")


class ConfigFile(_Strict):
    version: Literal[1] = 1
    workspace: str = "default"
    apps: tuple[AppSpec, ...] = ()
    endpoints: tuple[EndpointSpec, ...] = ()
    packages: tuple[PackageSpec, ...] = ()


@dataclass(frozen=True, slots=True)
class AppState:
    """An app as it is or should be; `api_key` in the clear, None: keep the current one."""

    name: str
    base_url: str
    mode: str
    fallback: str | None
    api_key: str | None


@dataclass(frozen=True, slots=True)
class EndpointState:
    """An endpoint as it is or should be. `settings` are JSON values with secrets in the clear; a
    secret the file left out is absent from `settings` (kept). `url_token` only matters on create."""

    id: str
    name: str
    plugin: str
    apps: tuple[str, ...]
    enabled: bool
    settings: dict[str, Any]
    limits: Limits
    secret_fields: frozenset[str] = frozenset()
    url_token: str | None = None


@dataclass(frozen=True, slots=True)
class State:
    """Apps by name and endpoints by id, of one workspace. Lives in memory only (it holds secrets)."""

    workspace: str = "default"
    apps: dict[str, AppState] = field(default_factory=dict)
    endpoints: dict[str, EndpointState] = field(default_factory=dict)
    packages: dict[str, str] = field(default_factory=dict)  # installed Dify packages: author/name -> identity
