"""Dify plugin packages through the admin API: package bytes as the body, the admin API's error shape."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from gateway.difyplugins import pack_directory, sign_package
from gateway.records.endpoints import EndpointRecord
from tests.support.difyplugin import entries_of, session_keypair, write_echo_plugin, zip_bytes
from tests.support.gateway import Running, admin_headers, make_settings, running_app

pytestmark = pytest.mark.anyio

API = "/admin/api"


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    (tmp_path / "ops.pem").write_bytes(session_keypair()[1])
    settings = make_settings(
        tmp_path, plugin_dir=str(tmp_path / "plugins"), plugin_public_keys=(str(tmp_path / "ops.pem"),)
    )
    async with running_app(settings, run_workers=False) as running:
        yield running


def package(tmp_path: Path, version: str = "0.0.1", *, signed: bool = True, padding: int = 0) -> bytes:
    tree = write_echo_plugin(tmp_path / f"echo-{version}", version=version)
    if padding:  # incompressible bytes: a package larger than a webhook body may be
        (tree / "_assets" / "big.bin").write_bytes(os.urandom(padding))
    data = pack_directory(tree)
    return sign_package(data, session_keypair()[0], 1_733_000_000) if signed else data


async def send(running: Running, method: str, path: str, content: bytes = b"") -> httpx.Response:
    return await running.client.request(method, API + path, content=content, headers=admin_headers())


async def test_install_show_list_upgrade_remove(running: Running, tmp_path: Path) -> None:
    big = package(tmp_path, padding=2 * 1024 * 1024)
    assert len(big) > running.gateway.settings.max_body_bytes
    created = await send(running, "POST", "/plugins", big)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["name"] == "tester/echo" and body["signature"] == "signed" and body["origin"] == "dify-package"
    assert body["signer"].startswith("key:") and body["permissions"] == ["endpoint", "storage:1048576"]
    assert (await send(running, "GET", "/plugins/tester/echo")).json() == body
    listing = (await send(running, "GET", "/plugins")).json()
    assert [p["name"] for p in listing["dify_plugins"]] == ["tester/echo"]
    assert {p["name"]: p["origin"] for p in listing["plugins"]}["echo"] == "built-in"

    again = await send(running, "POST", "/plugins", big)
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"

    upgraded = await send(running, "PUT", "/plugins/tester/echo", package(tmp_path, "0.0.2"))
    assert upgraded.status_code == 200 and upgraded.json()["version"] == "0.0.2"
    wrong = await send(running, "PUT", "/plugins/tester/other", package(tmp_path, "0.0.3"))
    assert wrong.status_code == 400 and "not tester/other" in wrong.json()["error"]["message"]

    record = EndpointRecord("ep_1", "tester/echo", (), {}, True, 0.0, 0.0)
    await running.gateway.store.doc_put("endpoints", "ep_1", record.to_doc())
    refused = await send(running, "DELETE", "/plugins/tester/echo")
    assert refused.status_code == 409 and "--disable-endpoints" in refused.json()["error"]["message"]
    removed = await send(running, "DELETE", "/plugins/tester/echo?disable_endpoints=true")
    assert removed.json() == {"deleted": "tester/echo", "disabled_endpoints": ["ep_1"]}
    assert (await send(running, "GET", "/plugins/tester/echo")).status_code == 404


async def test_unsigned_packages_need_allow_unsigned(running: Running, tmp_path: Path) -> None:
    refused = await send(running, "POST", "/plugins", package(tmp_path, signed=False))
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["code"] == "unsigned_package" and "not signed" in error["message"]
    allowed = await send(running, "POST", "/plugins?allow_unsigned=true", package(tmp_path, signed=False))
    assert allowed.status_code == 201 and allowed.json()["signature"] == "unsigned"
    bad_flag = await send(running, "POST", "/plugins?allow_unsigned=maybe", package(tmp_path, signed=False))
    assert bad_flag.status_code == 400


async def test_verify_installs_nothing(running: Running, tmp_path: Path) -> None:
    verified = await send(running, "POST", "/plugins/verify", package(tmp_path))
    assert verified.status_code == 200
    assert verified.json()["signed"] and verified.json()["identity"].startswith("tester/echo:0.0.1@")
    assert (await send(running, "GET", "/plugins")).json()["dify_plugins"] == []
    for content, code in ((b"", "bad_request"), (b"junk", "invalid_package")):
        answer = await send(running, "POST", "/plugins/verify", content)
        assert answer.status_code == 400 and answer.json()["error"]["code"] == code


async def test_the_package_routes_need_the_admin_token(running: Running, tmp_path: Path) -> None:
    answer = await running.client.post(API + "/plugins", content=package(tmp_path))
    assert answer.status_code == 401
    assert (await send(running, "GET", "/plugins")).json()["dify_plugins"] == []


async def test_a_package_the_disk_cannot_hold_is_a_400_and_leaves_nothing(running: Running, tmp_path: Path) -> None:
    entries, _ = entries_of(package(tmp_path, signed=False))
    hostile = zip_bytes([*entries, ("a" * 300 + ".py", b"x")])
    answered = await send(running, "POST", "/plugins?allow_unsigned=true", hostile)
    assert answered.status_code == 400, answered.text
    assert "too long" in answered.json()["error"]["message"]
    assert not list((tmp_path / "plugins").rglob("*.py"))
