"""A `.difypkg` read into memory and checked: entries, declarations, identity; and safe extraction.

A package is a zip (pkg/plugin_packager in langgenius/dify-plugin-daemon). Its identity is Dify's
`UniqueIdentity`, `author/name:version@checksum`, where the checksum is the daemon's
`CalculateChecksum`: SHA-256 over, for every entry sorted by name, sha256(name) + sha256(content).
It does not cover the zip comment, so signing a package leaves its identity as it was.

Everything read from a package is attacker-controlled: sizes are bounded before anything is
inflated, entry names that could leave the extraction directory (absolute, `..`, backslashes,
drive letters) are refused, and so are symlinks, duplicates and encrypted entries.
"""

from __future__ import annotations

import bisect
import fnmatch
import hashlib
import io
import os
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from gateway.difyplugins.form import SettingsField, settings_form
from gateway.difyplugins.manifest import EndpointDeclaration, EndpointGroup, InvalidPackage, Manifest, parse_model

__all__ = [
    "Archive",
    "PackageLimits",
    "PluginPackage",
    "archive_identity",
    "dify_checksum",
    "pack_directory",
    "read_archive",
    "read_directory",
    "read_package",
]

MANIFEST = "manifest.yaml"
VERIFICATION_FILE = ".verification.dify.json"
# Never packed from a plugin directory (Dify's packager skips these too, with its .difyignore).
_ALWAYS_IGNORED = (".git", ".venv", "venv", "__pycache__", "*.pyc", ".DS_Store", "*.difypkg", ".idea", ".vscode")
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # packing a directory twice gives the same bytes
# What a filesystem holds (NAME_MAX on Linux) and a path that stays well under PATH_MAX when extracted.
_MAX_NAME_PART_BYTES = 255
_MAX_NAME_BYTES = 1024


@dataclass(frozen=True, slots=True)
class PackageLimits:
    """Bounds on what a package may make the gateway read. The defaults are Dify's
    (`MAX_PLUGIN_PACKAGE_SIZE`, 50 MiB, applied to the file and to its inflated size)."""

    max_package_bytes: int = 50 * 1024 * 1024
    max_unpacked_bytes: int = 50 * 1024 * 1024
    max_entries: int = 10_000
    max_yaml_bytes: int = 1024 * 1024


@dataclass(frozen=True, slots=True)
class PluginPackage:
    """A package that was read and whose declarations check out (its signature is a separate matter:
    `gateway.difyplugins.signature.verify_package`)."""

    data: bytes  # the package file, as given
    manifest: Manifest
    group: EndpointGroup  # the endpoint group, its endpoint files read into `group.endpoints`
    form: tuple[SettingsField, ...]
    files: Mapping[str, bytes]  # regular files by name, in central-directory order
    entries: tuple[str, ...]  # every entry name in central-directory order (directories too)
    comment: bytes  # the zip comment, where a signature lives
    sha256: str  # Dify's checksum of the package contents (hex)
    archive_sha256: str = field(default="")  # SHA-256 of the package file itself

    @property
    def key(self) -> str:
        """`author/name`."""
        return self.manifest.key

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def identity(self) -> str:
        """`author/name:version@sha256`, Dify's unique identifier of the package."""
        return f"{self.manifest.key}:{self.manifest.version}@{self.sha256}"

    def extract_to(self, directory: str | os.PathLike[str]) -> Path:
        """Write the package's files under `directory`, which must not exist yet.

        The files go to a temporary sibling first and are moved in place at the end, so a failed
        extraction leaves nothing behind and a reader never sees half a plugin.
        """
        target = Path(directory)
        if target.exists() or target.is_symlink():
            raise InvalidPackage(f"{target} already exists")
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            for name, content in self.files.items():
                path = staging.joinpath(*PurePosixPath(name).parts)
                path.parent.mkdir(parents=True, exist_ok=True)
                # O_EXCL|O_NOFOLLOW: never write through a link, never overwrite what another entry wrote.
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
                with os.fdopen(fd, "wb") as out:
                    out.write(content)
            os.rename(staging, target)
        except BaseException:
            _remove_tree(staging)
            raise
        return target


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def dify_checksum(files: Mapping[str, bytes]) -> str:
    """The daemon's `CalculateChecksum` over `files` (name -> content)."""
    data = bytearray()
    for name in sorted(files):
        data += hashlib.sha256(name.encode()).digest()
        data += hashlib.sha256(files[name]).digest()
    return hashlib.sha256(data).hexdigest()


def _check_name(info: zipfile.ZipInfo) -> None:
    name = info.filename
    shown = name.encode("unicode_escape").decode("ascii")[:200]
    if not name or "\x00" in name or "\\" in name or name.startswith("/"):
        raise InvalidPackage(f"entry {shown!r} has an unsafe name")
    parts = name.rstrip("/").split("/") if info.is_dir() else name.split("/")
    if any(part in ("", ".", "..") for part in parts) or ":" in parts[0]:
        raise InvalidPackage(f"entry {shown!r} has an unsafe name")
    encoded = [part.encode("utf-8", "surrogateescape") for part in parts]
    if sum(len(part) + 1 for part in encoded) > _MAX_NAME_BYTES or max(map(len, encoded)) > _MAX_NAME_PART_BYTES:
        raise InvalidPackage(
            f"entry {shown!r} has a name too long to extract "
            f"(over {_MAX_NAME_PART_BYTES} bytes in a part or {_MAX_NAME_BYTES} in all)"
        )
    mode = info.external_attr >> 16
    if info.create_system == 3 and stat.S_ISLNK(mode):  # made on Unix: the mode bits are meaningful
        raise InvalidPackage(f"entry {shown!r} is a symbolic link")
    if info.flag_bits & 0x1:
        raise InvalidPackage(f"entry {shown!r} is encrypted")


def _read_entries(zf: zipfile.ZipFile, limits: PackageLimits) -> tuple[dict[str, bytes], tuple[str, ...]]:
    infos = zf.infolist()
    if len(infos) > limits.max_entries:
        raise InvalidPackage(f"the package has more than {limits.max_entries} entries")
    if sum(info.file_size for info in infos) > limits.max_unpacked_bytes:
        raise InvalidPackage(f"the package inflates to more than {limits.max_unpacked_bytes} bytes")
    seen: set[str] = set()
    files: dict[str, bytes] = {}
    total = 0
    for info in infos:
        _check_name(info)
        folded = info.filename.rstrip("/").casefold()  # a.py and A.py collide on some filesystems
        if folded in seen:
            raise InvalidPackage(f"the package holds {info.filename!r} twice")
        seen.add(folded)
        if info.is_dir():
            continue
        try:
            with zf.open(info) as entry:
                # The reader stops at the declared size and checks the CRC: a lying header fails here.
                content = entry.read(limits.max_unpacked_bytes - total + 1)
        except (zipfile.BadZipFile, NotImplementedError, EOFError, OSError, ValueError) as exc:
            raise InvalidPackage(f"entry {info.filename!r} cannot be read: {exc}") from None
        total += len(content)
        if total > limits.max_unpacked_bytes:
            raise InvalidPackage(f"the package inflates to more than {limits.max_unpacked_bytes} bytes")
        files[info.filename] = content
    ordered = sorted(files)  # a file "a" and a directory "a/..." cannot both exist on disk
    for name in files:  # the first name at or after "a/" in order starts with it if any does
        at = bisect.bisect_left(ordered, name + "/")
        if at < len(ordered) and ordered[at].startswith(name + "/"):
            raise InvalidPackage(f"{name!r} is both a file and a directory")
    return files, tuple(info.filename for info in infos)


class _NoAliases(yaml.SafeLoader):
    """YAML without aliases: a few hundred bytes of nested aliases expand into millions of values
    (a "billion laughs"). Dify's reader (yaml.v3) refuses excessive aliasing; a plugin's
    declarations have no need of aliases at all, so any is refused, naming its line."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            alias = self.peek_event()  # type: ignore[no-untyped-call]  # (untyped in types-PyYAML)
            raise yaml.composer.ComposerError(None, None, "uses a YAML alias", alias.start_mark)
        return super().compose_node(parent, index)


def _load(content: bytes) -> Any:
    return yaml.load(content, Loader=_NoAliases)  # a SafeLoader (plain data only), aliases refused


def _yaml(files: Mapping[str, bytes], name: str, limits: PackageLimits, referrer: str) -> Any:
    key = str(PurePosixPath(name)) if name else name
    if key not in files:
        raise InvalidPackage(f"{referrer} names {name!r}, which is not in the package")
    content = files[key]
    if len(content) > limits.max_yaml_bytes:
        raise InvalidPackage(f"{name} is larger than {limits.max_yaml_bytes} bytes")
    try:
        return _load(content)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" (line {where.line + 1})" if where is not None else ""
        problem = "uses a YAML alias" if getattr(exc, "problem", None) == "uses a YAML alias" else "is not valid YAML"
        raise InvalidPackage(f"{name} {problem}{at}") from None


@dataclass(frozen=True, slots=True)
class Archive:
    """The zip level of a package: its files, every entry name and its comment, all checked."""

    files: Mapping[str, bytes]  # regular files by name, in central-directory order
    entries: tuple[str, ...]  # every entry name in central-directory order (directories too)
    comment: bytes

    @property
    def has_directories(self) -> bool:
        return len(self.entries) != len(self.files)


def read_archive(data: bytes, limits: PackageLimits | None = None) -> Archive:
    """The entries of a package, read within `limits`, names checked; nothing about its declarations.

    Raises:
        InvalidPackage: not a zip, over a limit, an unsafe, duplicated or unreadable entry.
    """
    limits = limits or PackageLimits()
    if len(data) > limits.max_package_bytes:
        raise InvalidPackage(f"the package is larger than {limits.max_package_bytes} bytes")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            files, entries = _read_entries(zf, limits)
            return Archive(files, entries, zf.comment)
    except zipfile.BadZipFile as exc:
        raise InvalidPackage(f"not a plugin package (a zip file): {exc}") from None
    except (ValueError, OSError, EOFError, NotImplementedError) as exc:  # a mangled central directory
        raise InvalidPackage(f"not a readable plugin package: {exc.__class__.__name__}") from None


def archive_identity(archive: Archive) -> str | None:
    """`author/name:version@sha256` from the manifest's first three fields, or None when the
    archive has no readable manifest (for reports about packages that are refused anyway)."""
    try:
        data = _load(archive.files.get(MANIFEST, b"")[: PackageLimits().max_yaml_bytes])
    except yaml.YAMLError:
        return None
    if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in ("author", "name", "version")):
        return None
    return f"{data['author']}/{data['name']}:{data['version']}@{dify_checksum(archive.files)}"


def read_package(data: bytes, limits: PackageLimits | None = None) -> PluginPackage:
    """Read and check a `.difypkg`.

    Raises:
        InvalidPackage: not a zip, over a limit, an unsafe entry, a missing or wrong declaration,
            or a settings field the gateway cannot serve; the message says which.
    """
    limits = limits or PackageLimits()
    archive = read_archive(data, limits)
    files, entries, comment = archive.files, archive.entries, archive.comment
    if MANIFEST not in files:
        raise InvalidPackage("the package has no manifest.yaml at its root")
    manifest = parse_model(Manifest, _yaml(files, MANIFEST, limits, "the package"), MANIFEST)
    group = _endpoint_group(manifest, files, limits)
    entry = f"{manifest.meta.runner.entrypoint}.py"
    if entry not in files:
        raise InvalidPackage(f"{MANIFEST}: meta.runner.entrypoint names {entry}, which is not in the package")
    return PluginPackage(
        data=data,
        manifest=manifest,
        group=group,
        form=settings_form(group, manifest.plugins.endpoints[0]),
        files=files,
        entries=entries,
        comment=comment,
        sha256=dify_checksum(files),
        archive_sha256=hashlib.sha256(data).hexdigest(),
    )


def _endpoint_group(manifest: Manifest, files: Mapping[str, bytes], limits: PackageLimits) -> EndpointGroup:
    listed = manifest.plugins.endpoints
    if not listed:
        raise InvalidPackage(
            f"{MANIFEST} declares no endpoints (plugins.endpoints): the gateway hosts endpoint plugins"
        )
    if len(listed) > 1:
        raise InvalidPackage(f"{MANIFEST} declares {len(listed)} endpoint groups; Dify serves one")
    if not manifest.permissions.endpoint.enabled:
        raise InvalidPackage(f"{MANIFEST} declares endpoints without resource.permission.endpoint.enabled")
    where = listed[0]
    group = EndpointGroup.from_yaml_data(_yaml(files, where, limits, MANIFEST), where)
    declared = list(group.endpoints)
    for name in group.endpoint_files:
        declared.append(_endpoint(files, name, limits, where))
    if not declared:
        raise InvalidPackage(f"{where} lists no endpoints")
    return group.model_copy(update={"endpoints": declared})


def _endpoint(files: Mapping[str, bytes], name: str, limits: PackageLimits, where: str) -> EndpointDeclaration:
    decl = parse_model(EndpointDeclaration, _yaml(files, name, limits, where), name)
    if str(PurePosixPath(decl.extra.python.source)) not in files:
        raise InvalidPackage(f"{name}: extra.python.source names {decl.extra.python.source}, not in the package")
    return decl


# -- plugin directories ---------------------------------------------------------------------------


def _ignored(rel: str, patterns: list[str]) -> bool:
    parts = rel.split("/")
    for pattern in patterns:
        bare = pattern.strip("/")
        if fnmatch.fnmatch(rel, bare) or any(fnmatch.fnmatch(part, bare) for part in parts):
            return True
    return False


def pack_directory(directory: str | os.PathLike[str]) -> bytes:
    """Zip a plugin directory the same way every time: files sorted by name, fixed times and modes.

    Skips what Dify's packager skips (`.git`, caches, virtualenvs, `.difyignore` patterns) and
    refuses symbolic links rather than following them out of the directory.
    """
    root = Path(directory)
    if not root.is_dir():
        raise InvalidPackage(f"{root} is not a directory")
    patterns = list(_ALWAYS_IGNORED)
    ignore_file = root / ".difyignore"
    if ignore_file.is_file():
        patterns += [
            line.strip() for line in ignore_file.read_text().splitlines() if line.strip() and not line.startswith("#")
        ]
    names: list[tuple[str, Path]] = []
    for current, dirs, filenames in os.walk(root, followlinks=False):
        base = Path(current)
        for name in [*dirs, *filenames]:
            path = base / name
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                if _ignored(rel, patterns):
                    continue
                raise InvalidPackage(f"{rel} is a symbolic link; copy the file into the plugin instead")
        dirs[:] = sorted(d for d in dirs if not _ignored((base / d).relative_to(root).as_posix(), patterns))
        for name in filenames:
            rel = (base / name).relative_to(root).as_posix()
            if not _ignored(rel, patterns):
                names.append((rel, base / name))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for rel, path in sorted(names):
            info = zipfile.ZipInfo(rel, date_time=_FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            info.create_system = 3
            zf.writestr(info, path.read_bytes())
    return buffer.getvalue()


def read_directory(directory: str | os.PathLike[str], limits: PackageLimits | None = None) -> PluginPackage:
    """Pack an unpacked plugin directory (`pack_directory`) and read it like a package."""
    return read_package(pack_directory(directory), limits)
