"""The seam between installing a package and running it.

`PluginInstaller` is what the runtime provides (gateway's Dify plugin runtime builds a virtualenv in
`prepare` and stops the process in `discard`); `NoRuntime` does nothing, for a gateway (or a test)
that only installs and inspects packages.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from gateway.records.installations import Installation

__all__ = ["NoRuntime", "PluginInstaller"]


class PluginInstaller(Protocol):
    """Called by `DifyPlugins` around installs, upgrades and removals."""

    async def prepare(self, installation: Installation, *, wheels: Path | None = None) -> None:
        """Make the extracted installation runnable (virtualenv, dependencies from `wheels` when
        given); raise a `GatewayError` to refuse the install, which is then rolled back."""

    async def discard(self, installation: Installation) -> None:
        """Stop and delete what `prepare` built for this installation (upgraded away or removed)."""

    def runtime_state(self, installation: Installation) -> str | None:
        """A short state for listings (`running`, `stopped`, `crash-loop`…), or None when unknown."""


class NoRuntime:
    """Installs without running anything."""

    async def prepare(self, installation: Installation, *, wheels: Path | None = None) -> None:
        return None

    async def discard(self, installation: Installation) -> None:
        return None

    def runtime_state(self, installation: Installation) -> str | None:
        return None
