"""What the runtime needs of an installed Dify package: its key and identity, where its files are,
its settings form, endpoint rules and declared permissions (from the package, or from its
installation record on any replica)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.difyplugins.form import SettingsField
from gateway.difyplugins.manifest import EndpointDeclaration, Permissions
from gateway.difyplugins.package import PluginPackage
from gateway.records.installations import ORIGIN, Installation

__all__ = ["PluginSpec", "spec_of"]


@dataclass(frozen=True, slots=True)
class PluginSpec:
    key: str  # author/name
    identity: str  # author/name:version@sha256
    directory: Path  # the extracted package
    form: tuple[SettingsField, ...]
    endpoints: tuple[EndpointDeclaration, ...]
    permissions: Permissions
    description: str = ""
    origin: str = ORIGIN  # or REMOTE_DEBUG_ORIGIN: run by its developer, connected for debugging

    @classmethod
    def from_package(cls, package: PluginPackage, directory: Path) -> PluginSpec:
        manifest = package.manifest
        return cls(
            key=package.key,
            identity=package.identity,
            directory=directory,
            form=tuple(package.form),
            endpoints=tuple(package.group.endpoints),
            permissions=manifest.permissions,
            description=(manifest.description.get("en_US") or manifest.label.get("en_US") or "").strip(),
        )

    @classmethod
    def from_record(
        cls,
        *,
        key: str,
        identity: str,
        directory: str,
        form: Sequence[SettingsField],
        endpoints: Sequence[Mapping[str, Any]],
        permissions: Mapping[str, Any],
        description: str = "",
        origin: str = ORIGIN,
    ) -> PluginSpec:
        """From an installation record's fields (endpoints as `{"path", "method", "source"}`)."""
        return cls(
            key=key,
            identity=identity,
            directory=Path(directory),
            form=tuple(form),
            endpoints=tuple(
                EndpointDeclaration.model_validate(
                    {"path": e["path"], "method": e["method"], "extra": {"python": {"source": e.get("source", "")}}}
                )
                for e in endpoints
            ),
            permissions=Permissions.model_validate(dict(permissions)),
            description=description,
            origin=origin,
        )


def spec_of(installation: Installation) -> PluginSpec:
    """The runtime's view of an installation record (read from the shared store by any replica)."""
    return PluginSpec.from_record(
        key=installation.key,
        identity=installation.identity,
        directory=installation.install_dir,
        form=installation.settings_form,
        endpoints=installation.endpoints,
        permissions=installation.permissions,
        description=installation.label,
        origin=installation.origin,
    )
