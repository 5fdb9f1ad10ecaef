"""What a debugging plugin declares after its handshake (dify-plugins.md §4): `manifest_declaration`,
`endpoint_declaration`, other extension declarations, `asset_chunk`s, then `end` — read into the
installation record of origin `remote-debug`, checked by the same models as a package's YAML.

Its identity is `author/name:version@<sha256>`, the checksum taken like the daemon's over the
declarations and the workspace: a developer who changes only code reconnects as the same identity.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from gateway.difyplugins.form import settings_form
from gateway.difyplugins.manifest import EXTENSION_KINDS, EndpointGroup, InvalidPackage, Manifest, parse_model
from gateway.records.installations import REMOTE_DEBUG_ORIGIN, Installation

__all__ = ["MAX_ASSET_BYTES", "Declarations"]

MAX_ASSET_BYTES = 50 * 1024 * 1024  # the daemon's bound on a debugging plugin's assets
_KINDS = {
    "tool_declaration": "tools",
    "model_declaration": "models",
    "agent_strategy_declaration": "agent_strategies",
    "datasource_declaration": "datasources",
    "trigger_declaration": "triggers",
}


def _without_nulls(value: Any) -> Any:
    """The SDK sends unset sections as null (`"app": null`); the models read them as absent."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


@dataclass
class Declarations:
    """The declarations of one connection, as they arrive; `add` returns True at `end`."""

    manifest: dict[str, Any] | None = None
    endpoints: list[Any] | None = None
    others: set[str] = field(default_factory=set)
    asset_bytes: int = 0

    def add(self, message: Any) -> bool:
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            raise InvalidPackage("expected a declaration {type, data}")
        kind, data = message["type"], message.get("data")
        if kind == "manifest_declaration":
            if self.manifest is not None or not isinstance(data, dict):
                raise InvalidPackage("manifest_declaration: expected one object")
            self.manifest = data
        elif kind == "endpoint_declaration":
            if self.endpoints is not None or not isinstance(data, list):
                raise InvalidPackage("endpoint_declaration: expected one list")
            self.endpoints = data
        elif kind in _KINDS:
            self.others.add(_KINDS[kind])
        elif kind == "asset_chunk":
            chunk = data.get("data") if isinstance(data, dict) else None
            if not isinstance(chunk, str):
                raise InvalidPackage("asset_chunk: expected {filename, data, end}")
            try:
                self.asset_bytes += len(base64.b64decode(chunk, validate=True))
            except (binascii.Error, ValueError):
                raise InvalidPackage("asset_chunk: data is not base64") from None
            if self.asset_bytes > MAX_ASSET_BYTES:
                raise InvalidPackage(f"assets too large, at most {MAX_ASSET_BYTES // (1024 * 1024)} MiB")
        elif kind == "end":
            return True
        else:
            raise InvalidPackage(f"unknown declaration {kind[:40]!r}")
        return False

    def installation(self, *, workspace: str, now: float) -> Installation:
        """The installation record these declarations make (`InvalidPackage` when they fall short)."""
        if self.manifest is None:
            raise InvalidPackage("no manifest_declaration before end")
        manifest = parse_model(Manifest, _without_nulls(self.manifest), "manifest_declaration")
        if not self.endpoints:
            raise InvalidPackage("no endpoint_declaration before end: the gateway hosts endpoint plugins")
        if len(self.endpoints) > 1:
            raise InvalidPackage(f"endpoint_declaration has {len(self.endpoints)} endpoint groups; Dify serves one")
        if not manifest.permissions.endpoint.enabled:
            raise InvalidPackage("the manifest declares endpoints without resource.permission.endpoint.enabled")
        group = EndpointGroup.from_yaml_data(_without_nulls(self.endpoints[0]), "endpoint_declaration")
        if not group.endpoints:
            raise InvalidPackage("endpoint_declaration lists no endpoints")
        form = settings_form(group, "endpoint_declaration")
        checksum = hashlib.sha256(
            json.dumps([self.manifest, self.endpoints], sort_keys=True, separators=(",", ":")).encode()
            + workspace.encode()
        ).hexdigest()
        unserved = sorted(set(manifest.unserved()) | self.others, key=EXTENSION_KINDS.index)
        return Installation(
            key=manifest.key,
            identity=f"{manifest.key}:{manifest.version}@{checksum}",
            version=manifest.version,
            sha256=checksum,
            archive_sha256="",
            signed=False,
            signer=None,
            signature_reason=f"remote debugging with the debug key of workspace {workspace}: nothing to verify",
            allowed_unsigned=True,
            permissions=manifest.permissions.model_dump(mode="json"),
            settings_form=form,
            install_dir="",
            package_path="",
            installed_at=now,
            updated_at=now,
            label=manifest.label.get("en_US", "") or manifest.name,
            unserved=tuple(unserved),
            origin=REMOTE_DEBUG_ORIGIN,
            endpoints=tuple(
                {"path": e.path, "method": e.method, "hidden": e.hidden, "source": e.extra.python.source}
                for e in group.endpoints
            ),
        )
