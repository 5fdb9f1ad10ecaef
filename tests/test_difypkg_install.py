"""Installing, upgrading and removing Dify plugin packages, on both stores: signature policy, files,
records, the runtime hook, and endpoints that outlive upgrades and removals."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.clock import FakeClock
from gateway.difyplugins import InvalidPackage, UnsignedPackage, load_trusted_keys, pack_directory, sign_package
from gateway.difyplugins.installs import DifyPlugins
from gateway.exceptions import Conflict, NotFound, UpstreamError
from gateway.host.runtime import Gateway, open_gateway
from gateway.records.endpoints import EndpointRecord
from gateway.records.installations import Installation
from gateway.settings import Settings
from tests.support.difyplugin import session_keypair, write_echo_plugin
from tests.support.gateway import make_settings

pytestmark = pytest.mark.anyio


class RecordingRuntime:
    """A runtime hook that records its calls and can be told to refuse a prepare."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.fail_prepare = False

    async def prepare(self, installation: Installation, *, wheels: Path | None = None) -> None:
        self.calls.append(("prepare", installation.identity))
        assert "manifest.yaml" in files_under(installation.install_dir)  # extracted before prepare
        if self.fail_prepare:
            raise UpstreamError("pip could not install the dependencies")

    async def discard(self, installation: Installation) -> None:
        self.calls.append(("discard", installation.identity))

    def runtime_state(self, installation: Installation) -> str | None:
        return "running"


@pytest.fixture(params=["sqlite", "redis"])
async def gateway(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Gateway]:
    changes: dict[str, object] = {"plugin_dir": str(tmp_path / "plugins")}
    if request.param == "redis":
        changes["store"] = request.getfixturevalue("redis_db")
    gw = await open_gateway(make_settings(tmp_path, **changes), clock=FakeClock())
    try:
        yield gw
    finally:
        await gw.aclose()


@pytest.fixture
def runtime() -> RecordingRuntime:
    return RecordingRuntime()


@pytest.fixture
def plugins(gateway: Gateway, runtime: RecordingRuntime) -> DifyPlugins:
    """The gateway's Dify plugins, trusting the test's key and reporting to a recording runtime."""
    return DifyPlugins(
        gateway.store,
        gateway.endpoints,
        gateway.clock,
        plugin_dir=gateway.settings.plugin_directory,
        keys=load_trusted_keys([session_keypair()[1].decode()]),
        runtime=runtime,
    )


def package(tmp_path: Path, version: str = "0.0.1", *, signed: bool = True) -> bytes:
    data = pack_directory(write_echo_plugin(tmp_path / f"echo-{version}", version=version))
    return sign_package(data, session_keypair()[0], 1_733_000_000) if signed else data


def files_under(where: str | Path) -> list[str]:
    root = Path(where)
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) if root.exists() else []


def exists(path: str) -> bool:
    return Path(path).exists()


async def bind_endpoint(gateway: Gateway, plugin: str, endpoint_id: str = "ep_1") -> None:
    record = EndpointRecord(endpoint_id, plugin, ("support",), {}, True, 0.0, 0.0)
    await gateway.store.doc_put("endpoints", endpoint_id, record.to_doc())


async def test_an_unsigned_package_is_refused_and_leaves_nothing(
    plugins: DifyPlugins, tmp_path: Path, runtime: RecordingRuntime
) -> None:
    with pytest.raises(UnsignedPackage, match="not signed.*--allow-unsigned"):
        await plugins.install(package(tmp_path, signed=False))
    assert await plugins.all() == [] and runtime.calls == []
    assert files_under(plugins.plugin_dir) == []


async def test_a_signed_package_installs_with_its_signer_files_and_record(
    plugins: DifyPlugins, gateway: Gateway, tmp_path: Path, runtime: RecordingRuntime
) -> None:
    installed = await plugins.install(package(tmp_path))
    assert installed.key == "tester/echo" and installed.identity.startswith("tester/echo:0.0.1@")
    assert installed.signed and installed.signer is not None and installed.signer.startswith("key:")
    assert installed.permission_model.declared() == ["endpoint", "storage:1048576"]
    assert [f.name for f in installed.settings_form] == ["token", "mode", "verbose", "app", "greeting"]
    assert installed.installed_at == gateway.clock.time()
    assert "endpoints/echo.py" in files_under(installed.install_dir)
    assert installed.archive_sha256 == hashlib.sha256(package(tmp_path)).hexdigest() and exists(installed.package_path)
    assert await plugins.get("tester/echo") == installed  # the record round-trips through the store
    assert runtime.calls == [("prepare", installed.identity)]
    assert plugins.runtime_state(installed) == "running"
    with pytest.raises(Conflict, match="already installed.*upgrade"):
        await plugins.install(package(tmp_path))


async def test_unsigned_packages_install_when_allowed_per_install_or_by_setting(
    gateway: Gateway, plugins: DifyPlugins, tmp_path: Path
) -> None:
    installed = await plugins.install(package(tmp_path, signed=False), allow_unsigned=True)
    assert (installed.signed, installed.signer, installed.signature_state) == (False, None, "unsigned")
    assert "not signed" in installed.signature_reason
    await plugins.remove(installed.key)
    lenient = DifyPlugins(
        gateway.store,
        gateway.endpoints,
        gateway.clock,
        plugin_dir=plugins.plugin_dir,
        keys=load_trusted_keys(),
        allow_unsigned=True,  # GATEWAY_ALLOW_UNSIGNED_PLUGINS=true
    )
    assert not (await lenient.install(package(tmp_path))).signed  # signed by a key it does not trust


async def test_an_upgrade_keeps_the_key_and_its_endpoints_and_retires_the_old_files(
    gateway: Gateway, plugins: DifyPlugins, tmp_path: Path, runtime: RecordingRuntime
) -> None:
    old = await plugins.install(package(tmp_path))
    await bind_endpoint(gateway, "tester/echo")
    gateway.clock.advance(60)  # type: ignore[attr-defined]
    new = await plugins.upgrade(package(tmp_path, "0.0.2"))
    assert new.key == old.key and new.version == "0.0.2" and new.identity != old.identity
    assert (new.installed_at, new.updated_at) == (old.installed_at, old.installed_at + 60)
    assert runtime.calls == [("prepare", old.identity), ("prepare", new.identity), ("discard", old.identity)]
    assert not exists(old.install_dir) and not exists(old.package_path) and exists(new.install_dir)
    endpoint = await gateway.endpoints.get("ep_1")
    assert endpoint.enabled and endpoint.plugin == "tester/echo"
    with pytest.raises(Conflict, match="already installed"):
        await plugins.upgrade(package(tmp_path, "0.0.2"))


async def test_upgrading_what_is_not_installed_is_not_found(plugins: DifyPlugins, tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="not installed"):
        await plugins.upgrade(package(tmp_path))


async def test_a_failed_prepare_rolls_the_install_and_the_upgrade_back(
    plugins: DifyPlugins, tmp_path: Path, runtime: RecordingRuntime
) -> None:
    runtime.fail_prepare = True
    with pytest.raises(UpstreamError):
        await plugins.install(package(tmp_path))
    assert await plugins.all() == [] and files_under(plugins.plugin_dir) == []
    runtime.fail_prepare = False
    old = await plugins.install(package(tmp_path))
    before = files_under(plugins.plugin_dir)
    runtime.fail_prepare = True
    with pytest.raises(UpstreamError):
        await plugins.upgrade(package(tmp_path, "0.0.2"))
    assert await plugins.get(old.key) == old and files_under(plugins.plugin_dir) == before


async def test_remove_refuses_while_endpoints_use_it_and_disables_never_deletes(
    gateway: Gateway, plugins: DifyPlugins, tmp_path: Path, runtime: RecordingRuntime
) -> None:
    installed = await plugins.install(package(tmp_path))
    await bind_endpoint(gateway, "tester/echo", "ep_1")
    await bind_endpoint(gateway, "echo", "ep_other")  # another plugin's endpoint is not touched
    with pytest.raises(Conflict, match=r"used by 1 enabled endpoint\(s\) \(ep_1\).*--disable-endpoints"):
        await plugins.remove("tester/echo")
    assert await plugins.get("tester/echo") == installed
    removed, disabled = await plugins.remove("tester/echo", disable_endpoints=True)
    assert removed == installed and disabled == ["ep_1"]
    assert not (await gateway.endpoints.get("ep_1")).enabled  # kept, with its URL, only disabled
    assert (await gateway.endpoints.get("ep_other")).enabled
    assert runtime.calls[-1] == ("discard", installed.identity)
    assert files_under(plugins.plugin_dir) == []
    with pytest.raises(NotFound):
        await plugins.remove("tester/echo")
    # Back again, the same key: the disabled endpoint can be enabled and its URL works as before.
    await plugins.install(package(tmp_path))
    assert await plugins.users("tester/echo") == []


async def test_a_package_that_is_not_a_plugin_is_refused_before_any_file_is_written(
    plugins: DifyPlugins, tmp_path: Path
) -> None:
    with pytest.raises(InvalidPackage, match="not a plugin package"):
        await plugins.install(b"PK\x03\x04 not really", allow_unsigned=True)
    assert files_under(plugins.plugin_dir) == []


async def test_the_gateway_has_dify_plugins_wired_to_its_settings(gateway: Gateway, tmp_path: Path) -> None:
    assert gateway.dify_plugins.plugin_dir == tmp_path / "plugins"
    installed = await gateway.dify_plugins.install(package(tmp_path, signed=False), allow_unsigned=True)
    assert [i.key for i in await gateway.dify_plugins.all()] == [installed.key]
    assert gateway.dify_plugins.runtime_state(installed) is None  # no runtime: nothing to report


def test_plugin_settings_come_from_the_environment(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {"GATEWAY_PLUGIN_PUBLIC_KEYS": " ops.pem , /etc/keys/b.pem", "GATEWAY_ALLOW_UNSIGNED_PLUGINS": "true"}
    )
    assert settings.plugin_public_keys == ("ops.pem", "/etc/keys/b.pem") and settings.allow_unsigned_plugins
    assert Settings(store=f"sqlite:///{tmp_path}/gw.db").plugin_directory == tmp_path / "plugins"
    assert Settings(store="redis://localhost:6379/0").plugin_directory == Path("data/plugins")
    assert Settings(plugin_dir="/srv/plugins").plugin_directory == Path("/srv/plugins")
    assert not Settings().allow_unsigned_plugins and Settings.from_env({}).plugin_public_keys == ()
