"""`dify-gateway plugins` with Dify packages: keygen, sign, verify, install, list, upgrade, remove."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from gateway.difyplugins import generate_keypair, pack_directory, read_archive, verify_package
from gateway.difyplugins.signature import load_trusted_keys
from tests.gateway import test_cli
from tests.gateway.test_cli import Invoke, ok
from tests.support.difyplugin import write_echo_plugin

# The command-line fixtures of tests/gateway/test_cli.py: a throwaway SQLite store, a clean environment.
store_url, env, invoke = test_cli.store_url, test_cli.env, test_cli.invoke


def test_keygen_sign_verify_install_list_upgrade_remove(invoke: Invoke, tmp_path: Path) -> None:
    prefix = tmp_path / "keys" / "ops"
    prefix.parent.mkdir()
    ok(invoke("plugins", "keygen", "--out", str(prefix)))
    private, public = Path(f"{prefix}.private.pem"), Path(f"{prefix}.public.pem")
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert invoke("plugins", "keygen", "--out", str(prefix)).exit_code == 1  # never overwrites a key
    trust = {"GATEWAY_PLUGIN_PUBLIC_KEYS": str(public)}

    tree = write_echo_plugin(tmp_path / "echo")
    unsigned = tmp_path / "echo.difypkg"
    unsigned.write_bytes(pack_directory(tree))
    ok(invoke("plugins", "sign", str(unsigned), "--key", str(private)))
    signed = tmp_path / "echo.signed.difypkg"  # beside the package, named as Dify's CLI names it
    verdict = json.loads(ok(invoke("plugins", "verify", str(signed), "--json", extra_env=trust)).stdout)
    assert set(verdict) == {"signed", "signer", "identity", "reason"}
    assert verdict["signed"] and verdict["signer"].startswith("key:") and verdict["identity"].startswith("tester/echo:")
    assert verify_package(signed.read_bytes(), load_trusted_keys([str(public)])).signed

    refused = invoke("plugins", "verify", str(unsigned), "--json", extra_env=trust)
    assert refused.exit_code == 1 and json.loads(refused.stdout)["reason"].startswith("the package is not signed")
    not_a_package = tmp_path / "junk.difypkg"
    not_a_package.write_bytes(b"junk")
    junk = json.loads(invoke("plugins", "verify", str(not_a_package), "--json").stdout)
    assert junk == {"signed": False, "signer": None, "identity": None, "reason": junk["reason"]}
    assert "not a plugin package" in junk["reason"]

    failed = invoke("plugins", "install", str(tree), extra_env=trust)  # a directory is unsigned
    assert failed.exit_code == 1 and "--allow-unsigned" in failed.stderr
    installed = ok(invoke("plugins", "install", str(signed), extra_env=trust)).stdout
    assert "tester/echo:0.0.1@" in installed and "signed by key:" in installed

    table = ok(invoke("plugins", "list", extra_env=trust)).stdout.splitlines()
    [row] = [line for line in table if line.startswith("tester/echo ")]
    assert "dify-package" in row and "0.0.1" in row and "signed (key:" in row and "endpoint,storage:1048576" in row
    listing = json.loads(ok(invoke("plugins", "list", "--json", extra_env=trust)).stdout)
    [dify] = listing["dify_plugins"]
    assert dify["secret_settings"] == ["token"] and dify["runtime_state"] is None

    write_echo_plugin(tree, version="0.0.2")
    upgraded = json.loads(
        ok(invoke("plugins", "upgrade", str(tree), "--allow-unsigned", "--json", extra_env=trust)).stdout
    )
    assert upgraded["version"] == "0.0.2" and upgraded["signature"] == "unsigned"
    assert ok(invoke("plugins", "remove", "tester/echo")).stdout.strip() == "removed tester/echo"
    assert json.loads(ok(invoke("plugins", "list", "--json")).stdout)["dify_plugins"] == []


def test_sign_with_out_and_category(invoke: Invoke, tmp_path: Path) -> None:
    private, _ = generate_keypair(2048)
    (tmp_path / "k.pem").write_bytes(private)
    (tmp_path / "p.difypkg").write_bytes(pack_directory(write_echo_plugin(tmp_path / "echo")))
    out = tmp_path / "elsewhere.difypkg"
    ok(invoke("plugins", "sign", str(tmp_path / "p.difypkg"), "--key", str(tmp_path / "k.pem"), "--out", str(out)))
    key = str(tmp_path / "k.pem")
    ok(invoke("plugins", "sign", str(tmp_path / "p.difypkg"), "--key", key, "--category", "partner"))
    assert read_archive(out.read_bytes()).entries[-1] != ".verification.dify.json"
    categorised = read_archive((tmp_path / "p.signed.difypkg").read_bytes())
    assert categorised.files[".verification.dify.json"] == b'{"authorized_category":"partner"}'
    bad = invoke("plugins", "sign", str(tmp_path / "p.difypkg"), "--key", str(tmp_path / "p.difypkg"))
    assert bad.exit_code == 1 and "not an unencrypted PEM private key" in bad.stderr
