"""Dify's package signatures, exactly as langgenius/dify-plugin-daemon makes and checks them.

- The signature lives in the zip comment: JSON `{"signature": base64, "time": unix_seconds}`.
- Signed data: for every zip entry in central-directory order, the 32 raw bytes of sha256(content),
  concatenated, then the decimal text of `time` (pkg/plugin_packager/decoder/verifier.go).
- RSA PKCS#1 v1.5 over SHA-256 of that data (pkg/utils/encryption/rsa.go), RSA-4096 keys in PKCS#1
  PEM (`RSA PUBLIC KEY` / `RSA PRIVATE KEY`), the form `dify signature generate` writes.

So a changed byte in any entry, an added or removed entry, a reordered entry or a changed signing
time all break the signature. Dify's official key is built in; operators add their own
(`GATEWAY_PLUGIN_PUBLIC_KEYS`), which are named by `key:<sha256 of the PKCS#1 public key DER>`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from gateway.difyplugins.manifest import InvalidPackage
from gateway.difyplugins.package import (
    VERIFICATION_FILE,
    Archive,
    PackageLimits,
    archive_identity,
    read_archive,
)
from gateway.exceptions import ConfigurationError

__all__ = [
    "KEY_BITS",
    "TrustedKey",
    "UnsignedPackage",
    "Verification",
    "check_signature_policy",
    "fingerprint",
    "generate_keypair",
    "load_trusted_keys",
    "official_key",
    "sign_package",
    "signed_data",
    "verify_package",
]

KEY_BITS = 4096
OFFICIAL = "dify"
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)


class UnsignedPackage(InvalidPackage):
    """A package refused because it is not signed by a trusted key (and unsigned ones are not allowed)."""

    code = "unsigned_package"


@dataclass(frozen=True, slots=True)
class TrustedKey:
    """A public key packages may be signed with; `name` is `dify` or `key:<fingerprint>`."""

    name: str
    key: rsa.RSAPublicKey


@dataclass(frozen=True, slots=True)
class Verification:
    """What `verify_package` found. `signed` is True only for a signature that verifies with a
    trusted key; `signer` names that key; `reason` says why in words (for refusals above all)."""

    signed: bool
    signer: str | None
    identity: str | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"signed": self.signed, "signer": self.signer, "identity": self.identity, "reason": self.reason}


def fingerprint(key: rsa.RSAPublicKey) -> str:
    """SHA-256 (hex) of the key's PKCS#1 DER, the bytes inside its `RSA PUBLIC KEY` PEM."""
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    return hashlib.sha256(der).hexdigest()


def _public_key(pem: bytes, where: str) -> rsa.RSAPublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError:
        raise ConfigurationError(f"{where} is not a PEM public key") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise ConfigurationError(f"{where} is not an RSA public key (Dify signs with RSA)")
    return key


def official_key() -> TrustedKey:
    """Dify's official public key (pkg/license/public_key/PUBLIC_KEY.pem of the daemon)."""
    pem = resources.files("gateway.difyplugins").joinpath("dify-official-public-key.pem").read_bytes()
    return TrustedKey(OFFICIAL, _public_key(pem, "Dify's official key"))


def load_trusted_keys(operator_keys: Iterable[str] = ()) -> list[TrustedKey]:
    """Dify's official key, then each operator key: PEM text, or the path of a PEM file.

    Raises:
        ConfigurationError: a key that cannot be read, naming which one (never its content).
    """
    keys = [official_key()]
    for index, entry in enumerate(operator_keys, start=1):
        text = entry.strip()
        if "-----BEGIN" in text:
            pem, where = text.encode(), f"GATEWAY_PLUGIN_PUBLIC_KEYS entry {index}"
        else:
            try:
                pem, where = Path(text).read_bytes(), text
            except OSError as exc:
                raise ConfigurationError(f"cannot read public key file {text}: {exc.strerror or exc}") from None
        key = _public_key(pem, where)
        keys.append(TrustedKey(f"key:{fingerprint(key)}", key))
    return keys


def signed_data(archive: Archive, time: int) -> bytes:
    """The bytes a signature covers: sha256 of every entry in central-directory order, then `time`."""
    data = b"".join(hashlib.sha256(archive.files[name]).digest() for name in archive.entries)
    return data + str(time).encode()


def _comment(comment: bytes) -> tuple[bytes, int] | str:
    """The signature and time of a zip comment, or why there are none."""
    if not comment.strip():
        return "the package is not signed (its zip comment holds no signature)"
    try:
        value = json.loads(comment)
    except ValueError:
        return "the package's zip comment is not a signature (not JSON)"
    if not isinstance(value, dict) or not isinstance(value.get("signature"), str) or not value["signature"]:
        return "the package's zip comment holds no signature"
    time = value.get("time")
    if not isinstance(time, int) or isinstance(time, bool):
        return "the package's signature has no signing time"
    try:
        return base64.b64decode(value["signature"], validate=True), time
    except (binascii.Error, ValueError):
        return "the package's signature is not base64"


def verify_package(data: bytes, keys: Sequence[TrustedKey], *, limits: PackageLimits | None = None) -> Verification:
    """Check the signature of a package against `keys` (Dify's official key first, usually).

    Never raises for a bad signature: the answer says so. Raises `InvalidPackage` only when `data`
    is not a package at all (not a zip, unsafe entries, over the size limits).
    """
    archive = read_archive(data, limits)
    identity = archive_identity(archive)
    found = _comment(archive.comment)
    if isinstance(found, str):
        return Verification(False, None, identity, found)
    signature, time = found
    if archive.has_directories:
        # The daemon reads every entry as a file, so it cannot verify a package with directory entries.
        return Verification(False, None, identity, "the package has directory entries, which Dify cannot verify")
    message = signed_data(archive, time)
    for trusted in keys:
        try:
            trusted.key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            continue
        who = "Dify's official key" if trusted.name == OFFICIAL else f"operator key {trusted.name}"
        return Verification(True, trusted.name, identity, f"signed with {who}")
    return Verification(
        False,
        None,
        identity,
        "the signature does not verify: an entry, the list of entries or the signing time changed after "
        "signing, or it was signed with a key that is not trusted (GATEWAY_PLUGIN_PUBLIC_KEYS)",
    )


def _private_key(pem: bytes) -> rsa.RSAPrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise ConfigurationError("the private key is not an unencrypted PEM private key") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigurationError("the private key is not an RSA key (Dify signs with RSA)")
    return key


def sign_package(
    data: bytes, private_key_pem: bytes, time: int, *, verification: Mapping[str, Any] | None = None
) -> bytes:
    """The package re-written and signed the way `dify signature sign` does it.

    Files keep their order; directory entries are dropped (Dify cannot read them); with
    `verification` (e.g. `{"authorized_category": "community"}`), `.verification.dify.json` is
    written last and covered by the signature. `time` is the signing time, from the caller's clock.
    """
    key = _private_key(private_key_pem)
    archive = read_archive(data)
    files = {name: content for name, content in archive.files.items()}
    if verification is not None:
        files.pop(VERIFICATION_FILE, None)
        files[VERIFICATION_FILE] = json.dumps(dict(verification), separators=(",", ":")).encode()
    if archive.has_directories or verification is not None:
        archive = Archive(files, tuple(files), archive.comment)
    signature = key.sign(signed_data(archive, time), padding.PKCS1v15(), hashes.SHA256())
    comment = json.dumps({"signature": base64.b64encode(signature).decode(), "time": time}, separators=(",", ":"))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name in archive.entries:
            info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            info.create_system = 3
            zf.writestr(info, archive.files[name])
        zf.comment = comment.encode()
    return buffer.getvalue()


def generate_keypair(bits: int = KEY_BITS) -> tuple[bytes, bytes]:
    """A new RSA key pair as (private, public) PKCS#1 PEM, the format Dify's CLI writes and reads."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
    return private, public


def check_signature_policy(verification: Verification, *, allow_unsigned: bool) -> None:
    """Refuse an unsigned or unverifiable package unless allowed."""
    if not verification.signed and not allow_unsigned:
        raise UnsignedPackage(
            f"refused: {verification.reason}. Install it anyway with --allow-unsigned "
            "(or GATEWAY_ALLOW_UNSIGNED_PLUGINS=true) only if you trust where it came from"
        )
