"""Installing, upgrading and removing Dify plugin packages.

Install = read the package, verify its signature (refused when unsigned or unverifiable unless
allowed), write the package file and its extracted files under the plugin directory, let the
runtime prepare it, record it. Each step that fails undoes the ones before it. One change per
plugin at a time, across replicas (a `LeaseLock` on `author/name`).

Files live under GATEWAY_PLUGIN_DIR:

    packages/<author>/<name>/<version>-<sha256[:16]>.difypkg
    installed/<author>/<name>/<version>-<sha256[:16]>/

so an upgrade extracts beside the running version and switches the record only once the new one
is ready; the old files go after the switch.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import anyio.to_thread

from gateway.clock import Clock
from gateway.difyplugins.installer import NoRuntime, PluginInstaller
from gateway.difyplugins.package import PackageLimits, PluginPackage, read_package
from gateway.difyplugins.signature import TrustedKey, Verification, check_signature_policy, verify_package
from gateway.exceptions import Conflict, NotFound
from gateway.records.endpoints import EndpointService
from gateway.records.installations import REMOTE_DEBUG_ORIGIN, Installation, InstallationRecords
from gateway.storage.base import Store
from gateway.storage.lock import LeaseLock

__all__ = ["DifyPlugins"]

logger = logging.getLogger(__name__)

LOCK_TTL = 60.0  # renewed while held; a crashed installer frees the plugin this long after
LOCK_WAIT = 5.0


class DifyPlugins:
    """The installed Dify plugin packages of a gateway."""

    def __init__(
        self,
        store: Store,
        endpoints: EndpointService,
        clock: Clock,
        *,
        plugin_dir: Path,
        keys: Sequence[TrustedKey],
        allow_unsigned: bool = False,
        runtime: PluginInstaller | None = None,
        limits: PackageLimits | None = None,
    ) -> None:
        self._store = store
        self.records = InstallationRecords(store)
        self._endpoints = endpoints
        self._clock = clock
        self.plugin_dir = plugin_dir
        self._keys = tuple(keys)
        self._allow_unsigned = allow_unsigned
        self.runtime: PluginInstaller = runtime or NoRuntime()
        self._limits = limits or PackageLimits()

    # -- reading ----------------------------------------------------------------------------------

    def verify(self, data: bytes) -> Verification:
        """The signature state of a package; installs nothing."""
        return verify_package(data, self._keys, limits=self._limits)

    async def get(self, key: str) -> Installation:
        found = await self.records.get(key)
        if found is None:
            raise NotFound(f"no Dify plugin {key!r} is installed")
        return found

    async def all(self) -> list[Installation]:
        return await self.records.all()

    def runtime_state(self, installation: Installation) -> str | None:
        return self.runtime.runtime_state(installation)

    async def users(self, key: str) -> list[str]:
        """The ids of the enabled endpoints bound to plugin `key`."""
        return [e.id for e in await self._endpoints.all() if e.plugin == key and e.enabled]

    # -- changing ---------------------------------------------------------------------------------

    async def install(self, data: bytes, *, allow_unsigned: bool = False, wheels: Path | None = None) -> Installation:
        """Install a package that is not installed yet (`Conflict` if it is: upgrade it instead)."""
        package, verification = await anyio.to_thread.run_sync(self._checked, data, allow_unsigned)
        async with self._lock(package.key):
            current = await self.records.get(package.key)
            if current is not None:
                raise Conflict(
                    f"{package.key} is already installed ({current.version}); "
                    "upgrade it with `dify-gateway plugins upgrade` (its endpoints keep their URLs)"
                )
            installation = await self._put_files(package, verification, allow_unsigned, wheels, installed_at=None)
            if not await self.records.create(installation):  # only under a lost lock
                await self._drop(installation)
                raise Conflict(f"{package.key} was installed meanwhile")
        logger.info("installed Dify plugin %s (%s)", installation.identity, installation.signature_state)
        return installation

    async def upgrade(self, data: bytes, *, allow_unsigned: bool = False, wheels: Path | None = None) -> Installation:
        """Replace an installed plugin with another version of it; its endpoints keep their URLs."""
        package, verification = await anyio.to_thread.run_sync(self._checked, data, allow_unsigned)
        async with self._lock(package.key):
            current = await self.records.get(package.key)
            if current is None:
                raise NotFound(f"{package.key} is not installed; install it with `dify-gateway plugins install`")
            if current.identity == package.identity:
                raise Conflict(f"{package.identity} is already installed")
            installation = await self._put_files(
                package, verification, allow_unsigned, wheels, installed_at=current.installed_at
            )
            await self.records.put(installation)
            await self._retire(current, keep=installation)
        logger.info("upgraded Dify plugin %s to %s", current.identity, installation.identity)
        return installation

    async def remove(self, key: str, *, disable_endpoints: bool = False) -> tuple[Installation, list[str]]:
        """Uninstall `key`. Refused while enabled endpoints use it, unless `disable_endpoints`, which
        disables them (never deletes them: their URLs work again once the plugin is back).

        Returns the removed installation and the ids of the endpoints that were disabled.
        """
        async with self._lock(key):
            installation = await self.get(key)
            users = await self.users(key)
            if users and not disable_endpoints:
                raise Conflict(
                    f"{key} is used by {len(users)} enabled endpoint(s) ({', '.join(users)}); remove it with "
                    "--disable-endpoints to disable them (their URLs are kept), or delete them first"
                )
            for endpoint_id in users:
                await self._endpoints.set_enabled(endpoint_id, False)
            await self.records.delete(key)
            await self._retire(installation, keep=None)
        logger.info("removed Dify plugin %s (disabled endpoints: %s)", installation.identity, users or "none")
        return installation, users

    async def record_remote(self, installation: Installation) -> Installation:
        """Record a plugin connected for remote debugging (origin `remote-debug`) under its key, so
        its endpoints are minted and listed like an installed package's. Refused (`Conflict`) while
        a package is installed under that key: remove it first, or debug under another name."""
        async with self._lock(installation.key):
            current = await self.records.get(installation.key)
            if current is not None and current.origin != REMOTE_DEBUG_ORIGIN:
                raise Conflict(
                    f"{installation.key} is installed here as a package ({current.version}); remove it "
                    "(`dify-gateway plugins remove`) to debug this plugin, or debug it under another name"
                )
            if current is None or current.identity != installation.identity:
                await self.records.put(installation)
                return installation
        return current

    # -- steps ------------------------------------------------------------------------------------

    def _checked(self, data: bytes, allow_unsigned: bool) -> tuple[PluginPackage, Verification]:
        verification = self.verify(data)
        package = read_package(data, self._limits)
        check_signature_policy(verification, allow_unsigned=allow_unsigned or self._allow_unsigned)
        return package, verification

    def _lock(self, key: str) -> contextlib.AbstractAsyncContextManager[LeaseLock]:
        return LeaseLock(self._store, f"lock:difyplugin:{key}", ttl=LOCK_TTL).held(self._clock, wait=LOCK_WAIT)

    def _paths(self, package: PluginPackage) -> tuple[Path, Path]:
        author, name = package.manifest.author, package.manifest.name
        stem = f"{package.version}-{package.sha256[:16]}"
        return (
            self.plugin_dir / "packages" / author / name / f"{stem}.difypkg",
            self.plugin_dir / "installed" / author / name / stem,
        )

    async def _put_files(
        self,
        package: PluginPackage,
        verification: Verification,
        allow_unsigned: bool,
        wheels: Path | None,
        *,
        installed_at: float | None,
    ) -> Installation:
        package_path, install_dir = self._paths(package)
        await anyio.to_thread.run_sync(_write_files, package, package_path, install_dir)
        now = self._clock.time()
        installation = Installation(
            key=package.key,
            identity=package.identity,
            version=package.version,
            sha256=package.sha256,
            archive_sha256=package.archive_sha256,
            signed=verification.signed,
            signer=verification.signer,
            signature_reason=verification.reason,
            allowed_unsigned=not verification.signed,
            permissions=package.manifest.permissions.model_dump(mode="json"),
            settings_form=package.form,
            install_dir=str(install_dir),
            package_path=str(package_path),
            installed_at=now if installed_at is None else installed_at,
            updated_at=now,
            label=package.manifest.label.get("en_US", "") or package.manifest.name,
            unserved=tuple(package.manifest.unserved()),
            endpoints=tuple(
                {"path": e.path, "method": e.method, "hidden": e.hidden, "source": e.extra.python.source}
                for e in package.group.endpoints
            ),
        )
        try:
            await self.runtime.prepare(installation, wheels=wheels)
        except BaseException:
            await anyio.to_thread.run_sync(_remove_files, installation)
            raise
        return installation

    async def _retire(self, installation: Installation, *, keep: Installation | None) -> None:
        """Stop the runtime of an installation that was replaced or removed, then delete its files
        (unless the replacement uses the same ones)."""
        try:
            await self.runtime.discard(installation)
        except Exception:  # the record already moved on; a stale venv must not undo that
            logger.exception("the runtime failed to discard %s", installation.identity)
        if keep is None or keep.install_dir != installation.install_dir:
            await anyio.to_thread.run_sync(_remove_files, installation)

    async def _drop(self, installation: Installation) -> None:
        await self._retire(installation, keep=None)


def _write_files(package: PluginPackage, package_path: Path, install_dir: Path) -> None:
    """The package file and its extracted files (blocking: run in a thread)."""
    if install_dir.exists():  # left by an install that died half-way: it is ours to replace
        shutil.rmtree(install_dir)
    _write_atomically(package_path, package.data)
    try:
        package.extract_to(install_dir)
    except BaseException:
        package_path.unlink(missing_ok=True)
        raise


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _remove_files(installation: Installation) -> None:
    if not installation.install_dir:  # a plugin connected for remote debugging has no files here
        return
    shutil.rmtree(installation.install_dir, ignore_errors=True)
    Path(installation.package_path).unlink(missing_ok=True)
