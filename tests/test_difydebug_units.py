"""Remote debugging, piece by piece: the debug keys (stored hashed, shown once), the declarations a
debugging plugin sends, the signed hop between replicas, the listening address setting, and
`dify-gateway plugins debug-key`."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from gateway.clock import FakeClock
from gateway.difyplugins.debug import DebugKeys, Declarations, ForwardAuth, decode_hop, encode_hop
from gateway.difyplugins.manifest import InvalidPackage
from gateway.exceptions import ConfigurationError, Unauthorized
from gateway.plugin import Headers, Request
from gateway.records.installations import REMOTE_DEBUG_ORIGIN
from gateway.settings import Settings
from gateway.storage import open_store
from tests.gateway import test_cli
from tests.gateway.test_cli import Invoke, ok

store_url, env, invoke = test_cli.store_url, test_cli.env, test_cli.invoke

# What the SDK sends (dify_plugin 0.7, `Plugin._initialize_tcp_stream`): unset sections as null.
MANIFEST = {
    "version": "0.0.1",
    "type": "plugin",
    "author": "tests",
    "name": "echo",
    "repo": None,
    "description": {"en_US": "test plugin echo"},
    "icon": "icon.svg",
    "icon_dark": None,
    "label": {"en_US": "echo"},
    "created_at": "2026-01-01T00:00:00Z",
    "resource": {
        "memory": 268435456,
        "permission": {"tool": None, "model": None, "node": None, "endpoint": {"enabled": True}, "app": None},
    },
    "plugins": {"tools": [], "models": [], "endpoints": ["group/main.yaml"], "agent_strategies": []},
    "meta": {"version": "0.0.1", "arch": ["amd64"], "runner": {"language": "python", "version": "3.12"}},
}
ENDPOINTS = [
    {
        "settings": [{"name": "token", "type": "secret-input", "required": True, "label": {"en_US": "Token"}}],
        "endpoints": [
            {"path": "/ping", "method": "GET", "hidden": False, "extra": {"python": {"source": "endpoints/ping.py"}}}
        ],
    }
]


def _declared(*messages: dict[str, object]) -> Declarations:
    declarations = Declarations()
    ended = False
    for message in messages:
        ended = declarations.add(message)
    assert ended
    return declarations


def test_the_sdks_declarations_make_an_installation_of_origin_remote_debug() -> None:
    declarations = _declared(
        {"type": "manifest_declaration", "data": MANIFEST},
        {"type": "endpoint_declaration", "data": ENDPOINTS},
        {
            "type": "asset_chunk",
            "data": {"filename": "icon.svg", "data": base64.b64encode(b"<svg/>").decode(), "end": True},
        },
        {"type": "end", "data": {}},
    )
    installation = declarations.installation(workspace="default", now=1.0)
    assert installation.origin == REMOTE_DEBUG_ORIGIN
    assert installation.key == "tests/echo" and installation.identity.startswith("tests/echo:0.0.1@")
    assert not installation.signed and installation.install_dir == ""
    assert [f.name for f in installation.settings_form] == ["token"] and installation.settings_form[0].secret
    assert installation.endpoints[0]["path"] == "/ping"
    # The same declarations from another workspace's key are another identity (like the daemon's checksum).
    assert declarations.installation(workspace="other", now=1.0).identity != installation.identity
    assert declarations.installation(workspace="default", now=2.0).identity == installation.identity


@pytest.mark.parametrize(
    ("messages", "fragment"),
    [
        ([{"type": "end", "data": {}}], "no manifest_declaration"),
        ([{"type": "manifest_declaration", "data": MANIFEST}, {"type": "end", "data": {}}], "no endpoint_declaration"),
        (
            [
                {"type": "manifest_declaration", "data": {**MANIFEST, "author": "Bad Author"}},
                {"type": "endpoint_declaration", "data": ENDPOINTS},
                {"type": "end", "data": {}},
            ],
            "author",
        ),
    ],
)
def test_declarations_that_fall_short_are_refused_with_the_reason(
    messages: list[dict[str, object]], fragment: str
) -> None:
    with pytest.raises(InvalidPackage, match=fragment):
        _declared(*messages).installation(workspace="default", now=1.0)


def test_declarations_out_of_shape_are_refused_as_they_arrive() -> None:
    declarations = Declarations()
    with pytest.raises(InvalidPackage, match="unknown declaration"):
        declarations.add({"type": "surprise", "data": {}})
    with pytest.raises(InvalidPackage, match="not base64"):
        declarations.add({"type": "asset_chunk", "data": {"filename": "a", "data": "***", "end": True}})
    declarations.add({"type": "manifest_declaration", "data": MANIFEST})
    with pytest.raises(InvalidPackage, match="expected one object"):
        declarations.add({"type": "manifest_declaration", "data": MANIFEST})


@pytest.mark.anyio
async def test_a_debug_key_is_shown_once_stored_hashed_and_rotated(tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path / 'keys.db'}", clock=FakeClock())
    keys = DebugKeys(store, FakeClock())
    record, key = await keys.issue("default")
    assert key is not None and key.startswith("dgdk_")
    assert key not in json.dumps(await store.doc_list("dify_debug_keys"))  # only its digest is stored
    again, shown = await keys.issue("default")
    assert shown is None and again == record  # kept, never shown again
    assert await keys.workspace_of(key) == "default"
    assert await keys.workspace_of(key + "x") is None
    assert await keys.workspace_of("") is None
    _, rotated = await keys.issue("default", rotate=True)
    assert rotated is not None and rotated != key
    assert await keys.workspace_of(key) is None and await keys.workspace_of(rotated) == "default"
    await store.aclose()


def _request() -> Request:
    return Request(
        method="POST",
        path="/echo/a b",
        query_string="z=1&a=%20two",
        headers=Headers([("x-dup", "1"), ("x-dup", "2"), ("content-type", "text/plain")]),
        body=b"\x00binary\nbody",
        endpoint_id="ep_1",
        endpoint_url="http://gw.test/e/tok",
        received_at=5.0,
        client_ip="10.1.2.3",
        request_id="req-1",
    )


def test_a_hop_carries_the_whole_request_and_is_verified_before_its_body() -> None:
    clock = FakeClock()
    auth = ForwardAuth([b"k" * 32], clock)
    meta, body = encode_hop("tests/echo", _request())
    auth.verify(auth.sign(meta), meta)
    hop = decode_hop(meta)
    assert (hop.plugin, hop.endpoint_id) == ("tests/echo", "ep_1")
    request = hop.request(body)
    assert request.headers.getall("x-dup") == ["1", "2"]  # repeated headers survive the hop
    assert (request.path, request.query_string, request.body) == ("/echo/a b", "z=1&a=%20two", b"\x00binary\nbody")
    assert (request.client_ip, request.request_id, request.endpoint_url) == (
        "10.1.2.3",
        "req-1",
        "http://gw.test/e/tok",
    )
    with pytest.raises(Unauthorized):
        hop.request(body + b"!")  # not the body that was signed


def test_a_hop_signed_with_another_key_tampered_or_stale_is_refused() -> None:
    clock = FakeClock()
    auth = ForwardAuth([b"k" * 32], clock)
    meta, _ = encode_hop("tests/echo", _request())
    signature = auth.sign(meta)
    with pytest.raises(Unauthorized):
        ForwardAuth([b"other" * 8], clock).verify(signature, meta)
    other_meta, _ = encode_hop("tests/other", _request())
    with pytest.raises(Unauthorized):
        auth.verify(signature, other_meta)
    with pytest.raises(Unauthorized):
        auth.verify("v1=" + signature.partition("v1=")[2], meta)  # no time
    # Sealing keys rotate: a replica that lists the old key after the new one still accepts it.
    ForwardAuth([b"new" * 11, b"k" * 32], clock).verify(signature, meta)
    clock.advance(61)
    with pytest.raises(Unauthorized):
        auth.verify(signature, meta)


@pytest.mark.parametrize(
    ("value", "address"),
    [
        ("", None),
        ("5003", ("127.0.0.1", 5003)),
        (":5003", ("127.0.0.1", 5003)),
        ("0.0.0.0:5003", ("0.0.0.0", 5003)),
        ("[::1]:5003", ("::1", 5003)),
    ],
)
def test_the_debug_address_listens_on_loopback_unless_a_host_is_given(
    value: str, address: tuple[str, int] | None
) -> None:
    assert Settings(plugin_debug_addr=value).plugin_debug_address == address


@pytest.mark.parametrize("value", ["host", "host:port", "1:99999"])
def test_a_malformed_debug_address_is_a_configuration_error(value: str) -> None:
    with pytest.raises(ConfigurationError, match="GATEWAY_PLUGIN_DEBUG_ADDR"):
        _ = Settings(plugin_debug_addr=value).plugin_debug_address


def test_debug_key_prints_the_address_and_a_key_once(invoke: Invoke, tmp_path: Path) -> None:
    listen = {"GATEWAY_PLUGIN_DEBUG_ADDR": "5003"}
    first = ok(invoke("plugins", "debug-key", extra_env=listen)).stdout
    assert "REMOTE_INSTALL_URL=127.0.0.1:5003" in first
    key = next(line.split("=", 1)[1] for line in first.splitlines() if line.startswith("REMOTE_INSTALL_KEY="))
    again = ok(invoke("plugins", "debug-key", extra_env=listen)).stdout
    assert key not in again and "--new" in again
    rotated = json.loads(ok(invoke("plugins", "debug-key", "--new", "--json", extra_env=listen)).stdout)
    assert rotated["key"] and rotated["key"] != key and rotated["address"] == "127.0.0.1:5003"
    everywhere = {"GATEWAY_PLUGIN_DEBUG_ADDR": "0.0.0.0:7000", "GATEWAY_PUBLIC_URL": "https://gw.example.com"}
    assert "REMOTE_INSTALL_URL=gw.example.com:7000" in ok(invoke("plugins", "debug-key", extra_env=everywhere)).stdout
    off = ok(invoke("plugins", "debug-key")).stdout
    assert "GATEWAY_PLUGIN_DEBUG_ADDR is not set" in off
    missing = invoke("plugins", "debug-key", "--workspace", "nope")
    assert missing.exit_code == 1
