"""Installed Dify plugin packages: one record per plugin, keyed by `author/name`.

The key stays across upgrades, so every endpoint bound to `author/name` keeps its URL. A record says
what was installed (identity, version, checksum), how far it is trusted (signature state and signer,
or that an operator allowed it unsigned), what it declared (permissions, settings form) and where
its files are (the package file and the extracted directory under GATEWAY_PLUGIN_DIR).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.difyplugins.form import SettingsField
from gateway.difyplugins.manifest import Permissions
from gateway.storage.base import Store

__all__ = ["COLLECTION", "ORIGIN", "REMOTE_DEBUG_ORIGIN", "Installation", "InstallationRecords"]

COLLECTION = "dify_plugins"
ORIGIN = "dify-package"
REMOTE_DEBUG_ORIGIN = "remote-debug"  # a plugin run by its developer, connected over TCP (no files here)


@dataclass(frozen=True, slots=True)
class Installation:
    """One installed package. `signed` is True only when a trusted key verified it; `signer` is then
    `dify` or `key:<fingerprint>`; an unsigned package installed anyway has `allowed_unsigned`."""

    key: str  # author/name
    identity: str  # author/name:version@sha256
    version: str
    sha256: str  # Dify's checksum of the contents
    archive_sha256: str  # of the package file
    signed: bool
    signer: str | None
    signature_reason: str
    allowed_unsigned: bool
    permissions: dict[str, Any]  # resource.permission, as declared
    settings_form: tuple[SettingsField, ...]
    install_dir: str  # the extracted files
    package_path: str  # the package file as installed
    installed_at: float
    updated_at: float
    label: str = ""
    unserved: tuple[str, ...] = ()  # extension kinds the gateway does not serve (tools, models…)
    origin: str = ORIGIN
    endpoints: tuple[dict[str, Any], ...] = field(default=())  # path, method, hidden, source of each

    @property
    def author(self) -> str:
        return self.key.partition("/")[0]

    @property
    def name(self) -> str:
        return self.key.partition("/")[2]

    @property
    def permission_model(self) -> Permissions:
        return Permissions.model_validate(self.permissions)

    @property
    def signature_state(self) -> str:
        """`signed` (by a trusted key), or `unsigned` (installed because unsigned packages were allowed)."""
        return "signed" if self.signed else "unsigned"

    def to_doc(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "identity": self.identity,
            "version": self.version,
            "sha256": self.sha256,
            "archive_sha256": self.archive_sha256,
            "signed": self.signed,
            "signer": self.signer,
            "signature_reason": self.signature_reason,
            "allowed_unsigned": self.allowed_unsigned,
            "permissions": self.permissions,
            "settings_form": [f.to_dict() for f in self.settings_form],
            "install_dir": self.install_dir,
            "package_path": self.package_path,
            "installed_at": self.installed_at,
            "updated_at": self.updated_at,
            "label": self.label,
            "unserved": list(self.unserved),
            "origin": self.origin,
            "endpoints": [dict(e) for e in self.endpoints],
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Installation:
        return cls(
            key=doc["key"],
            identity=doc["identity"],
            version=doc["version"],
            sha256=doc["sha256"],
            archive_sha256=doc.get("archive_sha256", ""),
            signed=doc["signed"],
            signer=doc.get("signer"),
            signature_reason=doc.get("signature_reason", ""),
            allowed_unsigned=doc.get("allowed_unsigned", False),
            permissions=doc.get("permissions", {}),
            settings_form=tuple(SettingsField.from_dict(f) for f in doc.get("settings_form", ())),
            install_dir=doc["install_dir"],
            package_path=doc["package_path"],
            installed_at=doc["installed_at"],
            updated_at=doc.get("updated_at", doc["installed_at"]),
            label=doc.get("label", ""),
            unserved=tuple(doc.get("unserved", ())),
            origin=doc.get("origin", ORIGIN),
            endpoints=tuple(doc.get("endpoints", ())),
        )


class InstallationRecords:
    """The installation records in the store (shared by every replica)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def get(self, key: str) -> Installation | None:
        doc = await self._store.doc_get(COLLECTION, key)
        return None if doc is None else Installation.from_doc(doc)

    async def put(self, installation: Installation) -> None:
        await self._store.doc_put(COLLECTION, installation.key, installation.to_doc())

    async def create(self, installation: Installation) -> bool:
        """Store the record only if nothing is installed under its key; True when stored."""
        return await self._store.doc_create(COLLECTION, installation.key, installation.to_doc())

    async def delete(self, key: str) -> bool:
        return await self._store.doc_delete(COLLECTION, key)

    async def all(self) -> list[Installation]:
        return [Installation.from_doc(doc) for doc in await self._store.doc_list(COLLECTION)]
