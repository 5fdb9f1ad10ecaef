"""Webhook signature checks: Slack v0, Discord Ed25519, Standard Webhooks and generic HMAC.

Pure functions: no I/O, no logging, no clock (the caller passes `now`). The rules (security.md
§1-3, platforms.md §0):

- Header values arrive as `str` (Starlette decodes them as latin-1) or as raw `bytes`. They are
  turned back into their original bytes and compared with `hmac.compare_digest(bytes, bytes)`;
  `compare_digest(str, str)` raises `TypeError` on non-ASCII input, which would be a 500.
- Malformed input (missing, empty, non-ASCII, wrong length, bad hex or base64, huge) makes a
  verifier return False. Nothing here raises on what a client sent; only the specific decoding
  errors are caught.
- Timestamps are 1-12 ASCII digits within `tolerance_s` of `now`, inclusive, in both directions.
- Signatures cover the raw body bytes as received, never re-serialized JSON.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Sequence
from secrets import token_bytes

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

__all__ = [
    "DEFAULT_TOLERANCE_S",
    "Ed25519Key",
    "MAX_HEADER_BYTES",
    "MAX_MSG_ID_CHARS",
    "MAX_SIGNATURE_ENTRIES",
    "check_timestamp",
    "hmac_sha256_hex",
    "new_webhook_secret",
    "parse_ed25519_public_key",
    "parse_webhook_secret",
    "sign_standard_webhook",
    "slack_signature",
    "standard_webhook_headers",
    "verify_discord",
    "verify_ed25519",
    "verify_hmac_hex",
    "verify_slack",
    "verify_standard_webhook",
]

DEFAULT_TOLERANCE_S = 300
MAX_HEADER_BYTES = 8 * 1024  # longer signature headers are refused before any work
MAX_SIGNATURE_ENTRIES = 64  # Standard Webhooks entries per header
MAX_MSG_ID_CHARS = 256
WEBHOOK_SECRET_PREFIX = "whsec_"
MIN_WEBHOOK_SECRET_BYTES = 24  # the Standard Webhooks spec: 24-64 random bytes
MAX_WEBHOOK_SECRET_BYTES = 64
_MAX_TIMESTAMP_CHARS = 12

# Byte patterns, so only ASCII digits match: str patterns would let `\d`-like classes or int()
# accept full-width digits.
_TIMESTAMP = re.compile(rb"[0-9]{1,12}")
_ED25519_SIGNATURE_HEX = re.compile(rb"[0-9a-f]{128}")
_ED25519_KEY_HEX = re.compile(r"[0-9a-fA-F]{64}")
# Printable ASCII without "." (the field separator of the signed content) or space.
_MSG_ID = re.compile(rb"[\x21-\x2d\x2f-\x7e]{1,256}")


def _raw(value: str | bytes | None, limit: int = MAX_HEADER_BYTES) -> bytes | None:
    """The header value's original bytes; None when missing, longer than `limit` or not latin-1."""
    if value is None or len(value) > limit:  # length first: no work at all on huge values
        return None
    if isinstance(value, bytes):
        return value
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:  # e.g. an emoji: it can't have come off the wire, so it can't match
        return None


def _fresh(raw: bytes, now: float, tolerance_s: int) -> bool:
    return _TIMESTAMP.fullmatch(raw) is not None and abs(now - int(raw)) <= tolerance_s


def check_timestamp(value: str | bytes | None, now: float, *, tolerance_s: int = DEFAULT_TOLERANCE_S) -> bool:
    """True if `value` is 1-12 ASCII digits of Unix seconds within ±`tolerance_s` of `now` (inclusive)."""
    raw = _raw(value, _MAX_TIMESTAMP_CHARS)
    return raw is not None and _fresh(raw, now, tolerance_s)


def hmac_sha256_hex(secret: bytes, message: bytes) -> str:
    """Lowercase hex HMAC-SHA256 of `message`."""
    return hmac.digest(secret, message, "sha256").hex()  # one call into OpenSSL, no HMAC object


def verify_hmac_hex(secret: bytes, message: bytes, signature: str | bytes | None, *, prefix: str = "") -> bool:
    """Check `signature == prefix + lowercase-hex HMAC-SHA256(secret, message)` in constant time.

    `prefix` is e.g. "v0=" (Slack) or "sha256=" (GitHub-style). An empty secret verifies nothing.
    """
    sig = _raw(signature)
    if not secret or sig is None:
        return False
    expected = prefix.encode("ascii") + hmac_sha256_hex(secret, message).encode("ascii")
    return hmac.compare_digest(expected, sig)


# -- Slack v0 ---------------------------------------------------------------------------------


def _slack_base(timestamp: bytes, body: bytes) -> bytes:
    return b"v0:" + timestamp + b":" + body


def slack_signature(signing_secret: bytes, timestamp: str, body: bytes) -> str:
    """The `X-Slack-Signature` value ("v0=<hex>") for `timestamp` and the raw `body`."""
    return "v0=" + hmac_sha256_hex(signing_secret, _slack_base(timestamp.encode("ascii"), body))


def verify_slack(
    signing_secret: bytes,
    timestamp: str | bytes | None,
    signature: str | bytes | None,
    body: bytes,
    now: float,
    *,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
) -> bool:
    """Verify a Slack request from `X-Slack-Request-Timestamp` and `X-Slack-Signature`."""
    ts = _raw(timestamp, _MAX_TIMESTAMP_CHARS)
    if ts is None or not _fresh(ts, now, tolerance_s):
        return False
    return verify_hmac_hex(signing_secret, _slack_base(ts, body), signature, prefix="v0=")


# -- Discord Ed25519 --------------------------------------------------------------------------


def parse_ed25519_public_key(public_key_hex: str) -> bytes:
    """Decode a stored Ed25519 public key (64 hex chars); raises ValueError, for config validation."""
    text = public_key_hex.strip() if isinstance(public_key_hex, str) else ""
    if _ED25519_KEY_HEX.fullmatch(text) is None:
        raise ValueError("an Ed25519 public key must be 64 hex characters (32 bytes)")
    return bytes.fromhex(text)


class Ed25519Key:
    """An Ed25519 public key decoded once, to verify many messages with it (a Discord endpoint's
    key is used for every interaction). Verification is libsodium's (PyNaCl), as `verify_ed25519`."""

    __slots__ = ("_key", "hex")

    def __init__(self, public_key_hex: str) -> None:
        """Raises ValueError unless `public_key_hex` is 64 hex characters (see `parse_ed25519_public_key`)."""
        raw = parse_ed25519_public_key(public_key_hex)
        self.hex = raw.hex()
        self._key = VerifyKey(raw)

    def verify(self, signature_hex: str | bytes | None, message: bytes) -> bool:
        """True if `signature_hex` (128 lowercase hex characters) is this key's signature of `message`."""
        sig = _raw(signature_hex, 128)
        if sig is None or _ED25519_SIGNATURE_HEX.fullmatch(sig) is None:
            return False
        try:
            self._key.verify(message, bytes.fromhex(sig.decode("ascii")))
        except BadSignatureError:  # also raised by libsodium for small-order or non-canonical keys
            return False
        return True

    def __repr__(self) -> str:
        return f"Ed25519Key({self.hex!r})"


def verify_ed25519(public_key_hex: str, signature_hex: str | bytes | None, message: bytes) -> bool:
    """Verify a lowercase-hex Ed25519 signature of `message`; False on any malformed key or signature."""
    try:
        key = Ed25519Key(public_key_hex)
    except ValueError:
        return False
    return key.verify(signature_hex, message)


def verify_discord(
    public_key: str | Ed25519Key,
    signature: str | bytes | None,
    timestamp: str | bytes | None,
    body: bytes,
    now: float,
    *,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
) -> bool:
    """Verify `X-Signature-Ed25519` over `timestamp + body`, with a replay window Discord doesn't have.

    `public_key` is the application's key as 64 hex characters or, decoded once, an `Ed25519Key`."""
    ts = _raw(timestamp, _MAX_TIMESTAMP_CHARS)
    if ts is None or not _fresh(ts, now, tolerance_s):
        return False
    if isinstance(public_key, Ed25519Key):
        return public_key.verify(signature, ts + body)
    return verify_ed25519(public_key, signature, ts + body)


# -- Standard Webhooks (v1, symmetric) --------------------------------------------------------


def new_webhook_secret() -> str:
    """A fresh `whsec_` secret: 32 random bytes, standard base64."""
    return WEBHOOK_SECRET_PREFIX + base64.b64encode(token_bytes(32)).decode("ascii")


def parse_webhook_secret(secret: str) -> bytes:
    """The raw key of a `whsec_<base64>` secret (the prefix is optional); ValueError on junk."""
    text = secret.strip().removeprefix(WEBHOOK_SECRET_PREFIX)
    try:
        # Unpadded base64 is common in the wild; the reference library pads too.
        raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except ValueError:  # binascii.Error, or a non-ASCII str
        raise ValueError("a webhook secret must be 'whsec_' followed by base64") from None
    if not MIN_WEBHOOK_SECRET_BYTES <= len(raw) <= MAX_WEBHOOK_SECRET_BYTES:
        raise ValueError(f"a webhook secret must decode to {MIN_WEBHOOK_SECRET_BYTES}-{MAX_WEBHOOK_SECRET_BYTES} bytes")
    return raw


def _v1_mac(secret: bytes, msg_id: bytes, timestamp: bytes, body: bytes) -> bytes:
    return hmac.new(secret, msg_id + b"." + timestamp + b"." + body, hashlib.sha256).digest()


def sign_standard_webhook(secret: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The "v1,<base64>" entry for `webhook-signature`; ValueError on an unusable id, secret or time."""
    mid = _raw(msg_id, MAX_MSG_ID_CHARS)
    if mid is None or _MSG_ID.fullmatch(mid) is None:
        raise ValueError("a webhook id must be 1-256 printable ASCII characters without '.' or spaces")
    if not secret:
        raise ValueError("a webhook secret must not be empty")
    if timestamp < 0:
        raise ValueError("a webhook timestamp must not be negative")
    mac = _v1_mac(secret, mid, str(timestamp).encode("ascii"), body)
    return "v1," + base64.b64encode(mac).decode("ascii")


def standard_webhook_headers(secrets: Sequence[bytes], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """`webhook-id`, `webhook-timestamp` and `webhook-signature` with one v1 entry per secret (rotation)."""
    if not secrets:
        raise ValueError("at least one webhook secret is needed")
    signature = " ".join(sign_standard_webhook(secret, msg_id, timestamp, body) for secret in secrets)
    return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp), "webhook-signature": signature}


def verify_standard_webhook(
    secrets: Sequence[bytes],
    msg_id: str | bytes | None,
    timestamp: str | bytes | None,
    signature_header: str | bytes | None,
    body: bytes,
    now: float,
    *,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
) -> bool:
    """Verify Standard Webhooks (or Svix) headers: any v1 entry matching any secret passes.

    Entries of other versions (e.g. `v1a`) and entries without a comma are skipped. Signatures
    are compared as canonical base64, so bad padding or stray characters never match.
    """
    mid = _raw(msg_id, MAX_MSG_ID_CHARS)
    ts = _raw(timestamp, _MAX_TIMESTAMP_CHARS)
    header = _raw(signature_header)
    if mid is None or ts is None or header is None:
        return False
    if _MSG_ID.fullmatch(mid) is None or not _fresh(ts, now, tolerance_s):
        return False
    entries = [entry for entry in header.split(b" ") if entry]
    if len(entries) > MAX_SIGNATURE_ENTRIES:
        return False
    # One MAC per secret, then constant-time compares: work is O(secrets + entries).
    expected = [base64.b64encode(_v1_mac(secret, mid, ts, body)) for secret in secrets if secret]
    for entry in entries:
        version, comma, signature = entry.partition(b",")
        if version != b"v1" or not comma:
            continue
        for candidate in expected:
            if hmac.compare_digest(candidate, signature):
                return True
    return False
