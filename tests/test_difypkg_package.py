"""Reading Dify plugin packages: declarations, identity, hostile archives, extraction, the settings form."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from gateway.difyplugins import (
    InvalidPackage,
    PackageLimits,
    pack_directory,
    read_directory,
    read_package,
    secret_fields,
    sign_package,
    validate_settings,
)
from gateway.exceptions import ValidationFailed
from tests.support.difyplugin import entries_of, session_keypair, write_echo_plugin, zip_bytes


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return write_echo_plugin(tmp_path / "echo")


def dify_checksum_by_hand(data: bytes) -> str:
    """The daemon's CalculateChecksum, written again from its Go source for the comparison."""
    entries, _ = entries_of(data)
    pairs = sorted((name, content) for name, content in entries)
    blob = b"".join(hashlib.sha256(n.encode()).digest() + hashlib.sha256(c).digest() for n, c in pairs)
    return hashlib.sha256(blob).hexdigest()


def test_an_echo_plugin_reads_with_its_identity_form_and_permissions(tree: Path) -> None:
    package = read_directory(tree)
    assert package.key == "tester/echo"
    assert package.identity == f"tester/echo:0.0.1@{dify_checksum_by_hand(package.data)}"
    assert package.manifest.permissions.declared() == ["endpoint", "storage:1048576"]
    assert package.manifest.permissions.allows("storage") and not package.manifest.permissions.allows("app")
    assert [f.name for f in package.form] == ["token", "mode", "verbose", "app", "greeting"]
    assert secret_fields(package.form) == {"token"}
    [endpoint] = package.group.endpoints
    assert (endpoint.path, endpoint.method, endpoint.extra.python.source) == (
        "/echo/<path:rest>",
        "POST",
        "endpoints/echo.py",
    )
    assert "endpoints/echo.py" in package.files and package.archive_sha256 == hashlib.sha256(package.data).hexdigest()


def test_signing_does_not_change_the_identity(tree: Path) -> None:
    package = read_directory(tree)
    signed = read_package(sign_package(package.data, session_keypair()[0], 1_700_000_000))
    assert signed.identity == package.identity and signed.archive_sha256 != package.archive_sha256


def test_a_directory_packs_the_same_way_every_time_without_caches(tree: Path) -> None:
    first = pack_directory(tree)
    (tree / "__pycache__").mkdir()
    (tree / "__pycache__" / "main.cpython-312.pyc").write_bytes(b"\0")
    (tree / ".git").mkdir()
    (tree / ".git" / "HEAD").write_text("ref")
    (tree / "notes.tmp").write_text("x")
    (tree / ".difyignore").write_text("# scratch\n*.tmp\n")
    os.utime(tree / "main.py", (0, 0))
    second = pack_directory(tree)
    names = [name for name, _ in entries_of(second)[0]]
    assert not any(n.startswith((".git/", "__pycache__/")) or n.endswith((".pyc", ".tmp")) for n in names)
    (tree / ".difyignore").unlink()
    (tree / "notes.tmp").unlink()
    assert pack_directory(tree) == first


def test_a_symlink_in_a_plugin_directory_is_refused(tree: Path, tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("s")
    (tree / "link.py").symlink_to(tmp_path / "secret")
    with pytest.raises(InvalidPackage, match="symbolic link"):
        pack_directory(tree)


def good_entries(tree: Path) -> list[tuple[str, bytes]]:
    return entries_of(pack_directory(tree))[0]


@pytest.mark.parametrize(
    "name", ["../evil.py", "/etc/evil.py", "a\\..\\evil.py", "C:/evil.py", "a/../../evil.py", "a//b"]
)
def test_entries_that_could_leave_the_plugin_directory_are_refused(tree: Path, name: str) -> None:
    with pytest.raises(InvalidPackage, match="unsafe name"):
        read_package(zip_bytes([*good_entries(tree), (name, b"x")]))


@pytest.mark.parametrize("name", ["a" * 256 + ".py", "\u00e9" * 128 + ".py", "/".join(["d" * 200] * 6) + "/f.py"])
def test_names_no_filesystem_can_hold_are_refused(tree: Path, name: str) -> None:
    # A name part over 255 bytes, or a path over 1024: writing it would fail with ENAMETOOLONG.
    with pytest.raises(InvalidPackage, match="too long"):
        read_package(zip_bytes([*good_entries(tree), (name, b"x")]))


def test_symlink_entries_duplicates_and_file_directory_clashes_are_refused(tree: Path) -> None:
    with pytest.raises(InvalidPackage, match="symbolic link"):
        read_package(zip_bytes([*good_entries(tree), ("link", b"/etc/passwd")], symlink="link"))
    with pytest.raises(InvalidPackage, match="twice"):
        read_package(zip_bytes([*good_entries(tree), ("main.py", b"again")]))
    with pytest.raises(InvalidPackage, match="both a file and a directory"):
        read_package(zip_bytes([*good_entries(tree), ("main.py/x", b"x")]))
    # Names that sort between "a" and "a/…" ('-' and '.' come before '/') don't hide the clash.
    for between in (["a", "a-b", "a.c", "a/x"], ["a/x", "a.c", "a"]):
        with pytest.raises(InvalidPackage, match="'a' is both a file and a directory"):
            read_package(zip_bytes([*good_entries(tree), *((name, b"x") for name in between)]))
    read_package(zip_bytes([*good_entries(tree), ("a", b"x"), ("a-b/c", b"x"), ("ab/c", b"x")]))  # no clash


def test_zip_bombs_and_oversized_packages_are_refused_before_inflating(tree: Path) -> None:
    bomb = zip_bytes([*good_entries(tree), ("zeros.bin", b"\0" * 2_000_000)])
    assert len(bomb) < 100_000  # it inflates twenty-fold and more
    with pytest.raises(InvalidPackage, match="inflates to more than"):
        read_package(bomb, PackageLimits(max_unpacked_bytes=1_000_000))
    many = zip_bytes([*good_entries(tree), *((f"f{i}", b"") for i in range(50))])
    with pytest.raises(InvalidPackage, match="more than 20 entries"):
        read_package(many, PackageLimits(max_entries=20))
    with pytest.raises(InvalidPackage, match="larger than"):
        read_package(bomb, PackageLimits(max_package_bytes=1000))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not a zip", "not a plugin package"),
        (zip_bytes([("main.py", b"")]), "no manifest.yaml"),
        (zip_bytes([("manifest.yaml", b"a: [")]), "not valid YAML"),
    ],
)
def test_what_is_not_a_plugin_is_refused_with_the_reason(data: bytes, message: str) -> None:
    with pytest.raises(InvalidPackage, match=message):
        read_package(data)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"author": "Bad Author"}, "author must match"),
        ({"version": "one"}, "version must look like"),
        ({"plugins": {"endpoints": []}}, "declares no endpoints"),
        ({"plugins": {"endpoints": ["group/missing.yaml"]}}, "group/missing.yaml"),
        ({"resource": {"memory": 1, "permission": {}}}, "permission.endpoint.enabled"),
        ({"resource": {"memory": 1, "permission": {"endpoint": {"enabled": True}, "storage": {"size": 5}}}}, "size"),
        ({"meta": {"runner": {"language": "go", "version": "1", "entrypoint": "main"}}}, "language"),
        ({"meta": {"runner": {"language": "python", "version": "3.12", "entrypoint": "nope"}}}, "nope.py"),
    ],
)
def test_wrong_declarations_are_refused_naming_the_field(tmp_path: Path, changes: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidPackage, match=message):
        read_directory(write_echo_plugin(tmp_path / "p", **changes))


def test_yaml_aliases_are_refused_so_a_small_file_cannot_expand_into_millions_of_values(tree: Path) -> None:
    # Six levels of ten aliases each: a default of a million strings from a few hundred bytes.
    levels = "".join(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]\n" for i in range(1, 7))
    group = (
        "l0: &l0 [x]\n" + levels + "settings:\n- name: t\n  type: text-input\n  label: {en_US: T}\n"
        "  default: *l6\nendpoints:\n- endpoints/echo.yaml\n"
    )
    entries = [(n, group.encode() if n == "group/echo.yaml" else c) for n, c in good_entries(tree)]
    with pytest.raises(InvalidPackage, match=r"group/echo.yaml uses a YAML alias \(line 2\)"):
        read_package(zip_bytes(entries))


def test_a_settings_type_that_needs_dify_is_refused_by_name(tmp_path: Path) -> None:
    settings = [{"name": "model", "type": "model-selector", "label": {"en_US": "Model"}}]
    with pytest.raises(InvalidPackage, match="'model' is of type 'model-selector'.*cannot serve"):
        read_directory(write_echo_plugin(tmp_path / "p", settings=settings))


def test_a_missing_endpoint_source_is_refused(tree: Path) -> None:
    (tree / "endpoints" / "echo.py").unlink()
    with pytest.raises(InvalidPackage, match="extra.python.source"):
        read_directory(tree)


def test_extraction_writes_every_file_and_never_over_an_existing_directory(tree: Path, tmp_path: Path) -> None:
    package = read_directory(tree)
    target = package.extract_to(tmp_path / "out" / "echo")
    assert (target / "endpoints" / "echo.py").read_bytes() == (tree / "endpoints" / "echo.py").read_bytes()
    written = sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file())
    assert written == sorted(package.files)
    with pytest.raises(InvalidPackage, match="already exists"):
        package.extract_to(target)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["echo"]  # no staging directory left behind


# -- the settings form -------------------------------------------------------------------------------


def test_settings_fill_defaults_and_the_only_bound_app(tree: Path) -> None:
    form = read_directory(tree).form
    assert validate_settings(form, {"token": "t"}, apps=["support"]) == {
        "token": "t",
        "mode": "loud",
        "verbose": False,
        "app": "support",
    }
    values = {"token": "t", "mode": "quiet", "verbose": "yes", "app": {"app_id": "b"}, "greeting": "hi"}
    assert validate_settings(form, values, apps=["a", "b"]) == {
        "token": "t",
        "mode": "quiet",
        "verbose": True,
        "app": "b",
        "greeting": "hi",
    }


def test_settings_that_do_not_fit_list_every_problem_without_secret_values(tree: Path) -> None:
    form = read_directory(tree).form
    with pytest.raises(ValidationFailed) as caught:
        validate_settings(form, {"token": "", "mode": "shout", "verbose": "maybe", "nope": 1}, apps=["a", "b"])
    problems = {e["field"]: e["message"] for e in caught.value.errors}
    assert problems == {
        "nope": "is not a setting of this plugin",
        "token": "is required",
        "mode": "must be one of loud, quiet",
        "verbose": "must be true or false",
        "app": "is required",
    }
    with pytest.raises(ValidationFailed) as caught:
        validate_settings(form, {"token": "t", "app": "elsewhere"}, apps=["a"])
    assert caught.value.errors == [{"field": "app", "message": "must name one of the endpoint's apps (bound: a)"}]
