"""Finding the Python a Dify plugin runs on: the SDK (`dify_plugin`) needs Python >= 3.12.

`GATEWAY_PLUGIN_PYTHON` when set (it must be >= 3.12); otherwise the first of: the gateway's own
interpreter, `python3.13` / `python3.12` / `python3` on PATH, pyenv's versions
(`~/.pyenv/versions/3.1[2-9]*`), and `uv python find`. None found: a `ConfigurationError` that
names what to install.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import sys
from collections.abc import Iterable
from pathlib import Path

from gateway.exceptions import ConfigurationError

__all__ = ["MIN_VERSION", "PythonNotFound", "find_python", "python_version"]

MIN_VERSION = (3, 12)
_VERSION = re.compile(rb"(\d+)\.(\d+)\.(\d+)")


class PythonNotFound(ConfigurationError):
    """No Python >= 3.12 for Dify plugins on this machine."""


async def python_version(executable: str) -> tuple[int, int, int] | None:
    """The version of the Python at `executable`, or None when it does not run."""
    try:
        process = await asyncio.create_subprocess_exec(
            executable,
            "-c",
            "import sys; print('%d.%d.%d' % sys.version_info[:3])",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            stdin=asyncio.subprocess.DEVNULL,
        )
        out, _ = await process.communicate()
    except OSError:
        return None
    found = _VERSION.search(out)
    if process.returncode != 0 or found is None:
        return None
    major, minor, patch = (int(part) for part in found.groups())
    return major, minor, patch


def _candidates(home: Path) -> Iterable[str]:
    yield sys.executable
    for name in ("python3.13", "python3.12", "python3"):
        if found := shutil.which(name):
            yield found
    versions = home / ".pyenv" / "versions"
    if versions.is_dir():
        found_versions = [p for p in versions.glob("3.1[2-9]*") if (p / "bin" / "python").exists()]
        for path in sorted(found_versions, key=lambda p: _sort_key(p.name), reverse=True):
            yield str(path / "bin" / "python")


def _sort_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", name)[:3])


async def _uv_python() -> str | None:
    uv = shutil.which("uv")
    if uv is None:
        return None
    try:
        process = await asyncio.create_subprocess_exec(
            uv, "python", "find", ">=3.12", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
        )
        out, _ = await process.communicate()
    except OSError:
        return None
    path = out.decode(errors="replace").strip()
    return path if process.returncode == 0 and path else None


async def find_python(configured: str | None = None, *, home: Path | None = None) -> tuple[str, str]:
    """(path, "X.Y.Z") of a Python >= 3.12 for plugins; `PythonNotFound` naming what to install."""
    if configured:
        version = await python_version(configured)
        if version is None:
            raise PythonNotFound(f"GATEWAY_PLUGIN_PYTHON={configured!r} does not run")
        if version[:2] < MIN_VERSION:
            raise PythonNotFound(
                f"GATEWAY_PLUGIN_PYTHON={configured!r} is Python {'.'.join(map(str, version))}; "
                "Dify plugins (the dify_plugin SDK) need Python 3.12 or newer"
            )
        return configured, ".".join(map(str, version))
    seen: set[str] = set()
    for candidate in _candidates(home if home is not None else Path.home()):
        if candidate in seen:
            continue
        seen.add(candidate)
        version = await python_version(candidate)
        if version is not None and version[:2] >= MIN_VERSION:
            return candidate, ".".join(map(str, version))
    if (uv := await _uv_python()) is not None and (version := await python_version(uv)) is not None:
        return uv, ".".join(map(str, version))
    raise PythonNotFound(
        "Dify plugins need Python 3.12 or newer and none was found: install python3.12 "
        "(apt-get install python3.12, `pyenv install 3.12`, or `uv python install 3.12`) "
        "or point GATEWAY_PLUGIN_PYTHON at one"
    )
