"""Secrets at rest: AES-256-GCM under keys derived from the configured master keys, plus masking.

A ciphertext is a self-describing ASCII string, `enc:v1:<key_id>:<base64url(nonce + ct)>`:

- the AES key is HKDF-SHA256(master, info=b"dify-gateway settings v1"); `key_id` is the first
  8 hex chars of SHA-256 of that derived key, so rotation can tell which master key was used;
- `context` (e.g. "endpoint:<id>:<field>") is bound as associated data, so a ciphertext copied
  to another record or field fails to decrypt;
- master keys are given oldest to newest; encryption uses the newest, decryption any of them.

Errors never include the plaintext, the ciphertext or a key (security.md §8).
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gateway.exceptions import ConfigurationError

__all__ = [
    "ENCRYPTED_PREFIX",
    "MASK",
    "MIN_MASTER_KEY_BYTES",
    "SecretBox",
    "check_master_keys",
    "derive_key",
    "is_encrypted",
    "mask",
]

ENCRYPTED_PREFIX = "enc:v1:"
SETTINGS_PURPOSE = "dify-gateway settings v1"
MIN_MASTER_KEY_BYTES = 16
MASK = "••••••••"
_MASK_REVEAL_MIN_CHARS = 16  # shorter secrets show no characters at all
_NONCE_BYTES = 12
_GCM_TAG_BYTES = 16
_KEY_ID = re.compile(r"[0-9a-f]{8}")
_UNDECRYPTABLE = (
    "a stored secret can't be decrypted with the configured secret key(s); "
    "if GATEWAY_SECRET_KEY was changed, keep the old key listed until secrets are re-encrypted"
)


def derive_key(master: bytes, purpose: str) -> bytes:
    """A 32-byte key for one `purpose`, derived from `master` with HKDF-SHA256 (no salt)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode("utf-8")).derive(master)


def is_encrypted(value: object) -> bool:
    """True if `value` looks like a `SecretBox` ciphertext (it isn't decrypted or authenticated)."""
    return isinstance(value, str) and value.startswith(ENCRYPTED_PREFIX)


def mask(secret: str | None) -> str:
    """A fixed-width mask that doesn't reveal the length: the last 4 chars only for long secrets."""
    if not secret:
        return ""
    return MASK + secret[-4:] if len(secret) >= _MASK_REVEAL_MIN_CHARS else MASK


def check_master_keys(keys: Sequence[bytes], what: str) -> None:
    """Refuse an empty key list or keys shorter than MIN_MASTER_KEY_BYTES (ConfigurationError)."""
    if not keys:
        raise ConfigurationError(f"at least one secret key is needed for {what}")
    if any(not isinstance(key, bytes) or len(key) < MIN_MASTER_KEY_BYTES for key in keys):
        raise ConfigurationError(f"every secret key must be at least {MIN_MASTER_KEY_BYTES} bytes")


def _aad(key_id: str, context: str) -> bytes:
    return f"{ENCRYPTED_PREFIX}{key_id}:{context}".encode("utf-8", "surrogatepass")


class SecretBox:
    """Encrypts settings secrets with AES-256-GCM; see the module docstring for the format."""

    __slots__ = ("_ciphers", "_current")

    def __init__(self, keys: Sequence[bytes]) -> None:
        check_master_keys(keys, "encrypting secrets")
        ciphers: dict[str, AESGCM] = {}
        current = ""
        for master in keys:
            derived = derive_key(master, SETTINGS_PURPOSE)
            current = hashlib.sha256(derived).hexdigest()[:8]
            ciphers[current] = AESGCM(derived)
        self._ciphers = ciphers
        self._current = current

    def __repr__(self) -> str:
        return f"SecretBox(key_ids={sorted(self._ciphers)!r}, current={self._current!r})"

    @property
    def current_key_id(self) -> str:
        """The id of the newest key, which `encrypt` uses."""
        return self._current

    is_encrypted = staticmethod(is_encrypted)

    def encrypt(self, plaintext: str, *, context: str = "") -> str:
        """Encrypt `plaintext` under the newest key, bound to `context`."""
        nonce = os.urandom(_NONCE_BYTES)
        data = plaintext.encode("utf-8", "surrogatepass")
        sealed = self._ciphers[self._current].encrypt(nonce, data, _aad(self._current, context))
        return f"{ENCRYPTED_PREFIX}{self._current}:{base64.urlsafe_b64encode(nonce + sealed).decode('ascii')}"

    def decrypt(self, token: str, *, context: str = "") -> str:
        """Decrypt a ciphertext made with the same `context`; ConfigurationError if that's impossible."""
        key_id, blob = _parse(token)
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise ConfigurationError(_UNDECRYPTABLE)
        try:
            data = cipher.decrypt(blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], _aad(key_id, context))
        except InvalidTag:  # tampered, wrong context, or a key-id collision with another key
            raise ConfigurationError(_UNDECRYPTABLE) from None
        return data.decode("utf-8", "surrogatepass")

    def needs_rotation(self, token: str) -> bool:
        """True unless `token` is a ciphertext under the newest key (plaintext needs encrypting too)."""
        if not is_encrypted(token):
            return True
        return token[len(ENCRYPTED_PREFIX) :].partition(":")[0] != self._current

    def reencrypt(self, token: str, *, context: str = "") -> str:
        """`token` re-encrypted under the newest key (unchanged if it already is).

        A value that isn't a ciphertext raises ConfigurationError rather than being encrypted as is.
        """
        if not self.needs_rotation(token):
            return token
        return self.encrypt(self.decrypt(token, context=context), context=context)


def _parse(token: str) -> tuple[str, bytes]:
    if not is_encrypted(token):
        raise ConfigurationError("a stored secret is not in the encrypted format")
    key_id, colon, encoded = token[len(ENCRYPTED_PREFIX) :].partition(":")
    if not colon or _KEY_ID.fullmatch(key_id) is None:
        raise ConfigurationError(_UNDECRYPTABLE)
    try:
        blob = base64.b64decode(encoded, altchars=b"-_", validate=True)
    except ValueError:  # binascii.Error, or non-ASCII text
        raise ConfigurationError(_UNDECRYPTABLE) from None
    if len(blob) < _NONCE_BYTES + _GCM_TAG_BYTES:
        raise ConfigurationError(_UNDECRYPTABLE)
    return key_id, blob
