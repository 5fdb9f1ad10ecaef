"""Dify's signature scheme: ours against an independent implementation written here from the daemon's
Go source (pkg/plugin_packager/decoder/verifier.go, signer/withkey/sign_with_key.go), and tampering.

Dify's own Go verifier is not run: no Go toolchain on this machine (`go version` fails)."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from gateway.difyplugins import (
    TrustedKey,
    check_signature_policy,
    fingerprint,
    generate_keypair,
    load_trusted_keys,
    official_key,
    pack_directory,
    sign_package,
    verify_package,
)
from gateway.difyplugins.signature import UnsignedPackage
from gateway.exceptions import ConfigurationError
from tests.support.difyplugin import entries_of, session_keypair, write_echo_plugin, zip_bytes

SIGNED_AT = 1_733_000_000
# sha256 of the PKCS#1 DER of pkg/license/public_key/PUBLIC_KEY.pem in langgenius/dify-plugin-daemon
OFFICIAL_FINGERPRINT = "e274cc2d025b1dbaa8b09b29a1bcff74d9298454f9786a72dc9d00981a674873"


@pytest.fixture
def package(tmp_path: Path) -> bytes:
    return pack_directory(write_echo_plugin(tmp_path / "echo"))


@pytest.fixture
def keys() -> list[TrustedKey]:
    return load_trusted_keys([session_keypair()[1].decode()])


def independent_verify(data: bytes, public_pem: bytes) -> bool:
    """Dify's VerifyPluginWithPublicKeys, again: sha256 of each entry in central-directory order,
    the decimal time, RSA PKCS#1 v1.5 over SHA-256, the key a PKCS#1 `RSA PUBLIC KEY`."""
    assert public_pem.startswith(b"-----BEGIN RSA PUBLIC KEY-----")
    key = serialization.load_der_public_key(
        serialization.load_pem_public_key(public_pem).public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    assert isinstance(key, rsa.RSAPublicKey)
    entries, comment = entries_of(data)
    parsed = json.loads(comment)
    message = b"".join(hashlib.sha256(content).digest() for _, content in entries) + str(parsed["time"]).encode()
    try:
        key.verify(base64.b64decode(parsed["signature"]), message, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def independent_sign(data: bytes, private_pem: bytes, time: int) -> bytes:
    entries, _ = entries_of(data)
    key = serialization.load_pem_private_key(private_pem, None)
    assert isinstance(key, rsa.RSAPrivateKey)
    message = b"".join(hashlib.sha256(c).digest() for _, c in entries) + str(time).encode()
    signature = key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    comment = json.dumps({"signature": base64.b64encode(signature).decode(), "time": time}).encode()
    return zip_bytes(entries, comment=comment)


def test_a_package_we_sign_verifies_with_an_independent_verifier(package: bytes, keys: list[TrustedKey]) -> None:
    private, public = session_keypair()
    signed = sign_package(package, private, SIGNED_AT)
    assert independent_verify(signed, public)
    comment = json.loads(entries_of(signed)[1])
    assert set(comment) == {"signature", "time"} and comment["time"] == SIGNED_AT
    found = verify_package(signed, keys)
    pkcs1_der = serialization.load_pem_public_key(public).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.PKCS1
    )
    assert found.signed and found.signer == f"key:{hashlib.sha256(pkcs1_der).hexdigest()}"
    assert found.identity is not None and found.identity.startswith("tester/echo:0.0.1@")


def test_a_package_signed_independently_verifies_with_ours(package: bytes, keys: list[TrustedKey]) -> None:
    signed = independent_sign(package, session_keypair()[0], SIGNED_AT)
    assert verify_package(signed, keys).signed


def retouched(signed: bytes, *, change: str) -> bytes:
    entries, comment = entries_of(signed)
    if change == "byte":
        name, content = entries[1]
        entries[1] = (name, content[:-1] + bytes([content[-1] ^ 1]))
    elif change == "added":
        entries.append(("extra.py", b"print('hi')\n"))
    elif change == "removed":
        entries = [e for e in entries if e[0] != "requirements.txt"]
    elif change == "reordered":
        entries.reverse()
    elif change == "time":
        parsed = json.loads(comment)
        comment = json.dumps({**parsed, "time": parsed["time"] + 1}).encode()
    return zip_bytes(entries, comment=comment)


@pytest.mark.parametrize("change", ["byte", "added", "removed", "reordered", "time"])
def test_tampering_is_refused_with_the_reason(package: bytes, keys: list[TrustedKey], change: str) -> None:
    signed = sign_package(package, session_keypair()[0], SIGNED_AT)
    assert verify_package(retouched(signed, change="none"), keys).signed  # rewriting alone changes nothing
    tampered = retouched(signed, change=change)
    found = verify_package(tampered, keys)
    assert not found.signed and found.signer is None
    assert "does not verify" in found.reason and "signing time" in found.reason
    assert not independent_verify(tampered, session_keypair()[1])
    with pytest.raises(UnsignedPackage, match="refused: the signature does not verify"):
        check_signature_policy(found, allow_unsigned=False)


def test_unsigned_and_untrusted_packages_are_not_signed(package: bytes, keys: list[TrustedKey]) -> None:
    unsigned = verify_package(package, keys)
    assert (unsigned.signed, unsigned.signer) == (False, None)
    assert unsigned.reason == "the package is not signed (its zip comment holds no signature)"
    other_private, _ = generate_keypair(2048)
    stranger = verify_package(sign_package(package, other_private, SIGNED_AT), keys)
    assert not stranger.signed and "not trusted" in stranger.reason
    check_signature_policy(unsigned, allow_unsigned=True)  # allowed: no error


@pytest.mark.parametrize(
    ("comment", "reason"),
    [
        (b"hello", "not JSON"),
        (b'{"signature": "", "time": 1}', "holds no signature"),
        (b'{"signature": "AAAA", "time": true}', "no signing time"),
        (b'{"signature": "!!!", "time": 1}', "not base64"),
    ],
)
def test_a_comment_that_is_not_a_signature_says_so(
    package: bytes, keys: list[TrustedKey], comment: bytes, reason: str
) -> None:
    entries, _ = entries_of(package)
    found = verify_package(zip_bytes(entries, comment=comment), keys)
    assert not found.signed and reason in found.reason


def test_a_signed_package_with_directory_entries_is_unverifiable(package: bytes, keys: list[TrustedKey]) -> None:
    signed = independent_sign(package, session_keypair()[0], SIGNED_AT)
    entries, comment = entries_of(signed)
    with_dir = zip_bytes([("endpoints/", b""), *entries], comment=comment)
    assert "directory entries" in verify_package(with_dir, keys).reason
    # Signing such a package drops the directory entries, as only files can be verified.
    assert verify_package(sign_package(with_dir, session_keypair()[0], SIGNED_AT), keys).signed


def test_the_verification_file_is_written_last_and_covered(package: bytes, keys: list[TrustedKey]) -> None:
    signed = sign_package(package, session_keypair()[0], SIGNED_AT, verification={"authorized_category": "community"})
    entries, comment = entries_of(signed)
    assert entries[-1] == (".verification.dify.json", b'{"authorized_category":"community"}')
    assert verify_package(signed, keys).signed and independent_verify(signed, session_keypair()[1])
    entries[-1] = (".verification.dify.json", b'{"authorized_category":"langgenius"}')
    assert not verify_package(zip_bytes(entries, comment=comment), keys).signed


def test_dify_official_key_is_built_in_and_named_dify() -> None:
    key = official_key()
    assert key.name == "dify"
    assert fingerprint(key.key) == OFFICIAL_FINGERPRINT and key.key.key_size == 4096
    assert [k.name for k in load_trusted_keys()] == ["dify"]


def test_operator_keys_come_from_files_or_pem_text(tmp_path: Path) -> None:
    _, public = session_keypair()
    (tmp_path / "ops.pem").write_bytes(public)
    by_path, by_text = load_trusted_keys([str(tmp_path / "ops.pem")]), load_trusted_keys([public.decode()])
    assert by_path[1].name == by_text[1].name and by_path[1].name.startswith("key:")
    with pytest.raises(ConfigurationError, match="cannot read public key file"):
        load_trusted_keys([str(tmp_path / "missing.pem")])
    with pytest.raises(ConfigurationError, match="entry 1 is not a PEM public key"):
        load_trusted_keys(["-----BEGIN RSA PUBLIC KEY-----\nnope\n-----END RSA PUBLIC KEY-----"])


def test_generated_keys_are_pkcs1_rsa_4096_like_dify_cli_writes() -> None:
    private, public = generate_keypair()
    assert private.startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    assert public.startswith(b"-----BEGIN RSA PUBLIC KEY-----")
    key = serialization.load_pem_private_key(private, None)
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 4096
