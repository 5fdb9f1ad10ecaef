"""Secrets at rest (security.md §8): AES-256-GCM under HKDF-derived keys, and masking."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.exceptions import ConfigurationError
from gateway.security.crypto import MASK, SETTINGS_PURPOSE, SecretBox, derive_key, is_encrypted, mask

OLD = b"old-master-key-0123456789abcdef!"
NEW = b"new-master-key-0123456789abcdef!"
FORMAT = re.compile(r"enc:v1:[0-9a-f]{8}:[A-Za-z0-9_-]+={0,2}")
UNDECRYPTABLE = "can't be decrypted with the configured secret key(s)"


def key_id(master: bytes) -> str:
    return hashlib.sha256(derive_key(master, SETTINGS_PURPOSE)).hexdigest()[:8]


def rfc5869_hkdf_sha256(master: bytes, info: bytes) -> bytes:
    """An independent HKDF (RFC 5869, empty salt, 32-byte output) to pin `derive_key`."""
    prk = hmac.new(b"\x00" * 32, master, hashlib.sha256).digest()
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()


def test_derive_key_is_rfc5869_hkdf() -> None:
    assert derive_key(OLD, SETTINGS_PURPOSE) == rfc5869_hkdf_sha256(OLD, b"dify-gateway settings v1")
    assert derive_key(OLD, "a") != derive_key(OLD, "b")
    assert len(derive_key(OLD, "a")) == 32


def test_round_trip_and_format() -> None:
    box = SecretBox([NEW])
    for plaintext in ("xoxb-1234", "", "é 😀 \u0000", "\ud800 lone surrogate", "x" * 10_000):
        token = box.encrypt(plaintext, context="endpoint:1:bot_token")
        assert FORMAT.fullmatch(token)
        assert token.isascii()
        assert not plaintext or plaintext not in token
        assert box.decrypt(token, context="endpoint:1:bot_token") == plaintext
    assert box.encrypt("same") != box.encrypt("same")  # fresh nonce every time
    assert box.current_key_id == key_id(NEW)
    assert box.encrypt("s").split(":")[2] == key_id(NEW)


def test_format_matches_a_manual_aes_gcm_construction() -> None:
    box = SecretBox([NEW])
    kid = key_id(NEW)
    nonce = b"\x01" * 12
    sealed = AESGCM(derive_key(NEW, SETTINGS_PURPOSE)).encrypt(nonce, b"hello", f"enc:v1:{kid}:ctx".encode())
    token = f"enc:v1:{kid}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"
    assert box.decrypt(token, context="ctx") == "hello"


def test_context_binds_the_ciphertext_to_its_record() -> None:
    box = SecretBox([NEW])
    token = box.encrypt("secret-value", context="endpoint:1:signing_secret")
    for context in ("", "endpoint:2:signing_secret", "endpoint:1:bot_token"):
        with pytest.raises(ConfigurationError) as info:
            box.decrypt(token, context=context)
        assert UNDECRYPTABLE in info.value.message
        assert "secret-value" not in str(info.value)


def test_tampering_is_detected() -> None:
    box = SecretBox([NEW])
    token = box.encrypt("secret-value")
    prefix, blob = token.rsplit(":", 1)
    raw = bytearray(base64.urlsafe_b64decode(blob))
    for index in (0, 12, len(raw) - 1):  # nonce, ciphertext, tag
        changed = bytearray(raw)
        changed[index] ^= 1
        with pytest.raises(ConfigurationError, match=re.escape(UNDECRYPTABLE)):
            box.decrypt(f"{prefix}:{base64.urlsafe_b64encode(bytes(changed)).decode()}")


def test_rotation() -> None:
    old_box, both, new_box = SecretBox([OLD]), SecretBox([OLD, NEW]), SecretBox([NEW])
    legacy = old_box.encrypt("bot-token", context="c")
    assert both.decrypt(legacy, context="c") == "bot-token"
    assert both.needs_rotation(legacy)
    rotated = both.reencrypt(legacy, context="c")
    assert rotated.split(":")[2] == key_id(NEW) and not both.needs_rotation(rotated)
    assert both.reencrypt(rotated, context="c") is rotated  # already current: unchanged
    assert new_box.decrypt(rotated, context="c") == "bot-token"
    with pytest.raises(ConfigurationError, match=re.escape(UNDECRYPTABLE)):
        new_box.decrypt(legacy, context="c")  # old key dropped
    assert both.needs_rotation("plain-text-secret")
    with pytest.raises(ConfigurationError, match="not in the encrypted format"):
        both.reencrypt("plain-text-secret", context="c")  # plaintext is refused, not silently encrypted


def test_moving_a_ciphertext_to_another_key_id_fails() -> None:
    both = SecretBox([OLD, NEW])
    token = both.encrypt("s")
    moved = token.replace(key_id(NEW), key_id(OLD))
    with pytest.raises(ConfigurationError, match=re.escape(UNDECRYPTABLE)):
        both.decrypt(moved)


@pytest.mark.parametrize(
    "junk",
    [
        "enc:v1:",
        "enc:v1:abcd1234",
        "enc:v1:ABCD1234:AAAA",
        "enc:v1:abc:AAAA",
        "enc:v1:abcd1234:!!!!",
        "enc:v1:abcd1234:AAA",
        "enc:v1:abcd1234:" + "é" * 40,
        "enc:v1:abcd1234:" + base64.urlsafe_b64encode(b"\x00" * 27).decode(),  # shorter than nonce + tag
        "enc:v1:abcd1234:" + base64.urlsafe_b64encode(b"\x00" * 40).decode(),  # unknown key id
    ],
)
def test_malformed_ciphertexts_are_configuration_errors(junk: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(UNDECRYPTABLE)):
        SecretBox([NEW]).decrypt(junk)


@pytest.mark.parametrize("value", ["plain", "", "ENC:v1:x", "enc:v2:abcd1234:AAAA", None, 5])
def test_not_encrypted_values(value: object) -> None:
    assert not is_encrypted(value)
    assert not SecretBox.is_encrypted(value)
    with pytest.raises(ConfigurationError, match="not in the encrypted format"):
        SecretBox([NEW]).decrypt(value)  # type: ignore[arg-type]


def test_is_encrypted() -> None:
    assert is_encrypted(SecretBox([NEW]).encrypt("x"))


@pytest.mark.parametrize("keys", [[], [b"short"], [NEW, b"x" * 15], ["a-str-key-that-is-long-enough!!"]])
def test_bad_key_configuration(keys: list[bytes]) -> None:
    with pytest.raises(ConfigurationError):
        SecretBox(keys)


def test_repr_hides_keys() -> None:
    text = repr(SecretBox([OLD, NEW]))
    assert "master" not in text and key_id(NEW) in text


def test_mask_is_fixed_width_and_never_leaks_length() -> None:
    assert mask(None) == "" and mask("") == ""
    short = {mask("x" * n) for n in range(1, 16)}
    assert short == {MASK}  # 1..15 chars all look the same
    assert mask("a" * 12 + "WXYZ") == MASK + "WXYZ"
    assert mask("a" * 100 + "WXYZ") == MASK + "WXYZ"  # same width whatever the length
    assert mask("hunter2") == "••••••••"  # only bullets: no character of a short secret shows
