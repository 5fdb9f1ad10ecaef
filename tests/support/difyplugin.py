"""Dify plugins written by the tests: an echo endpoint plugin tree, packed and signed with keys the
tests generate, and zip helpers to build hostile packages."""

from __future__ import annotations

import io
import warnings
import zipfile
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from gateway.difyplugins.signature import generate_keypair

ECHO_ENDPOINT = """\
from collections.abc import Mapping

from werkzeug import Request, Response

from dify_plugin import Endpoint


class Echo(Endpoint):
    def _invoke(self, r: Request, values: Mapping, settings: Mapping) -> Response:
        return Response(r.get_data(), status=200, content_type="text/plain")
"""

MAIN = "from dify_plugin import DifyPluginEnv, Plugin\n\nPlugin(DifyPluginEnv()).run()\n"

SETTINGS: list[dict[str, Any]] = [
    {"name": "token", "type": "secret-input", "required": True, "label": {"en_US": "Token"}},
    {
        "name": "mode",
        "type": "select",
        "default": "loud",
        "options": [{"value": "loud", "label": {"en_US": "Loud"}}, {"value": "quiet", "label": {"en_US": "Quiet"}}],
        "label": {"en_US": "Mode"},
    },
    {"name": "verbose", "type": "boolean", "default": False, "label": {"en_US": "Verbose"}},
    {"name": "app", "type": "app-selector", "required": True, "label": {"en_US": "App"}},
    {"name": "greeting", "type": "text-input", "label": {"en_US": "Greeting"}},
]


def manifest(version: str = "0.0.1", **changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "version": version,
        "type": "plugin",
        "author": "tester",
        "name": "echo",
        "label": {"en_US": "Echo"},
        "description": {"en_US": "Echoes the request body"},
        "icon": "icon.svg",
        "resource": {
            "memory": 268435456,
            "permission": {"endpoint": {"enabled": True}, "storage": {"enabled": True, "size": 1048576}},
        },
        "plugins": {"endpoints": ["group/echo.yaml"]},
        "meta": {
            "version": "0.0.1",
            "arch": ["amd64", "arm64"],
            "runner": {"language": "python", "version": "3.12", "entrypoint": "main"},
        },
        "created_at": "2025-01-01T00:00:00Z",
    }
    base.update(changes)
    return base


def write_echo_plugin(
    root: Path,
    *,
    version: str = "0.0.1",
    settings: list[dict[str, Any]] | None = None,
    body: str = ECHO_ENDPOINT,
    **manifest_changes: Any,
) -> Path:
    """The tree of a small echo endpoint plugin, as `dify plugin init` lays it out."""
    (root / "group").mkdir(parents=True, exist_ok=True)
    (root / "endpoints").mkdir(exist_ok=True)
    (root / "_assets").mkdir(exist_ok=True)
    (root / "manifest.yaml").write_text(yaml.safe_dump(manifest(version, **manifest_changes)))
    group = {"settings": SETTINGS if settings is None else settings, "endpoints": ["endpoints/echo.yaml"]}
    (root / "group" / "echo.yaml").write_text(yaml.safe_dump(group))
    endpoint = {"path": "/echo/<path:rest>", "method": "POST", "extra": {"python": {"source": "endpoints/echo.py"}}}
    (root / "endpoints" / "echo.yaml").write_text(yaml.safe_dump(endpoint))
    (root / "endpoints" / "echo.py").write_text(body)
    (root / "main.py").write_text(MAIN)
    (root / "requirements.txt").write_text("dify_plugin>=0.5,<0.8\n")
    (root / "_assets" / "icon.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    return root


@cache
def session_keypair(index: int = 0) -> tuple[bytes, bytes]:
    """An RSA key pair generated for this test session (2048 bits: fast; keygen tests make 4096)."""
    return generate_keypair(2048)


def zip_bytes(entries: list[tuple[str, bytes]], *, comment: bytes = b"", symlink: str | None = None) -> bytes:
    """A zip of `entries` in this order; `symlink` names an entry marked as a Unix symbolic link."""
    buffer = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buffer, "w") as zf:
        warnings.simplefilter("ignore")  # duplicate names are what some tests are after
        for name, content in entries:
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3
            info.external_attr = (0o120777 if name == symlink else 0o100644) << 16
            zf.writestr(info, content)
        zf.comment = comment
    return buffer.getvalue()


def entries_of(data: bytes) -> tuple[list[tuple[str, bytes]], bytes]:
    """The entries (in central-directory order) and the comment of a zip."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return [(i.filename, zf.read(i)) for i in zf.infolist()], zf.comment
