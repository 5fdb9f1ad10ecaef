"""Plugin virtualenvs: one per set of requirements and Python version, shared by every package that
needs the same (an upgrade with unchanged dependencies reuses its venv; nothing is reinstalled).

A venv is built in a scratch directory and renamed into place when pip succeeded, so a half-built
venv is never used and two processes building the same one at once both end with a good one.
`wheels` makes installs offline (`pip --no-index --find-links DIR`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
import shutil
import tomllib
from dataclasses import dataclass
from pathlib import Path

from gateway.exceptions import ConfigurationError
from gateway.settings import environment_without_settings

__all__ = ["PluginVenvs", "Requirements", "VenvFailed", "requirements_of"]

logger = logging.getLogger(__name__)

_READY = "gateway-venv.json"
_OUTPUT_TAIL = 2000  # characters of pip's output kept in the error


class VenvFailed(ConfigurationError):
    """pip could not install a plugin's dependencies (the message ends with pip's last words)."""


@dataclass(frozen=True, slots=True)
class Requirements:
    """What a package asks pip for: requirement lines (from requirements.txt or pyproject.toml)."""

    lines: tuple[str, ...]

    def digest(self, python_version: str) -> str:
        text = "\n".join(sorted(self.lines)) + "\n@python " + python_version
        return hashlib.sha256(text.encode()).hexdigest()[:24]


def requirements_of(directory: Path) -> Requirements:
    """The dependencies of the plugin in `directory`: requirements.txt, else pyproject's [project] dependencies."""
    text_file = directory / "requirements.txt"
    if text_file.is_file():
        lines = []
        for raw in text_file.read_text(encoding="utf-8").splitlines():
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            if line.startswith("-"):
                # Options could point pip anywhere (-e ../x, --index-url, -r other): not from a package.
                raise ConfigurationError(f"requirements.txt option {line.split()[0]!r} is not accepted in a package")
            lines.append(line)
        return Requirements(tuple(lines))
    pyproject = directory / "pyproject.toml"
    if pyproject.is_file():
        try:
            document = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigurationError(f"the package's pyproject.toml is not valid TOML ({exc})") from None
        dependencies = document.get("project", {}).get("dependencies", [])
        if not isinstance(dependencies, list) or not all(isinstance(d, str) for d in dependencies):
            raise ConfigurationError("the package's pyproject.toml [project] dependencies must be a list of strings")
        return Requirements(tuple(d.strip() for d in dependencies if d.strip()))
    raise ConfigurationError("the package has neither requirements.txt nor pyproject.toml")


class PluginVenvs:
    """The venvs under `root` (on the data volume, so they survive restarts)."""

    def __init__(self, root: Path, *, wheels: Path | None = None) -> None:
        self.root = root
        self.wheels = wheels
        self._building: dict[str, asyncio.Lock] = {}

    def path(self, requirements: Requirements, python_version: str) -> Path:
        return self.root / requirements.digest(python_version)

    async def ensure(
        self, requirements: Requirements, python: str, python_version: str, *, wheels: Path | None = None
    ) -> Path:
        """The venv's Python for `requirements`, building the venv first if there is none yet."""
        target = self.path(requirements, python_version)
        lock = self._building.setdefault(target.name, asyncio.Lock())
        async with lock:
            if (target / _READY).is_file():
                return target / "bin" / "python"
            self.root.mkdir(parents=True, exist_ok=True)
            scratch = self.root / f".{target.name}.{secrets.token_hex(4)}"
            try:
                await _run(python, "-m", "venv", str(scratch), what="creating the plugin venv")
                args = ["-m", "pip", "install", "--disable-pip-version-check", "-q"]
                source = wheels or self.wheels
                if source is not None:
                    args += ["--no-index", "--find-links", str(source)]
                if requirements.lines:
                    await _run(
                        str(scratch / "bin" / "python"), *args, *requirements.lines, what="installing its dependencies"
                    )
                (scratch / _READY).write_text(
                    json.dumps({"python": python_version, "requirements": list(requirements.lines)}), encoding="utf-8"
                )
                try:
                    scratch.rename(target)
                except OSError:
                    if not (target / _READY).is_file():
                        raise
                    # Another process built the same venv meanwhile: use it.
            finally:
                if scratch.exists():
                    shutil.rmtree(scratch, ignore_errors=True)
            logger.info("built plugin venv %s (Python %s)", target.name, python_version)
            return target / "bin" / "python"

    def remove_unused(self, keep: set[Path]) -> list[Path]:
        """Delete the venvs not in `keep` (venv directories); returns what was removed."""
        removed: list[Path] = []
        if not self.root.is_dir():
            return removed
        for child in self.root.iterdir():
            if child.is_dir() and not child.name.startswith(".") and child not in keep:
                shutil.rmtree(child, ignore_errors=True)
                removed.append(child)
        return removed


async def _run(*argv: str, what: str) -> None:
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=environment_without_settings(),  # a package's build scripts never see the gateway's secrets
    )
    out, _ = await process.communicate()
    if process.returncode != 0:
        tail = out.decode(errors="replace")[-_OUTPUT_TAIL:].strip()
        raise VenvFailed(f"{what} failed (exit {process.returncode}): {tail}")
