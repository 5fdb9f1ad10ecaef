"""Request verification: Lark's signature, its encrypted bodies and the verification token
(platforms.md §3, Lark; lark-oapi's `EventDispatcherHandler` does the same checks).

- The body is `{"encrypt": base64(IV + AES-256-CBC(event))}` with key SHA-256(Encrypt Key) and
  PKCS#7 padding; it must decrypt to a JSON object. The Encrypt Key is required: a body in the
  clear is refused, except a `url_verification` carrying the right verification token.
- `X-Lark-Signature` = hex SHA-256(`X-Lark-Request-Timestamp` + `X-Lark-Request-Nonce` +
  Encrypt Key + raw body): a plain hash, not an HMAC, compared in constant time on bytes; the
  timestamp must be within ±300 s of the injected clock.
- The verification token (the event's `header.token`, a v1 event's `token`), when configured,
  must match.
- `url_verification` is answered whether signed or not (Lark does not sign it, and lark-oapi
  skips the signature for it); its decryption with our key and the token prove it is Lark's.

A passed verification hands the decrypted event on (`Verdict.ok(verified=Opened)`, the
handler's `Request.verified`): the body is decrypted once per request.

Anything missing, malformed, non-ASCII, truncated, stale or wrong is a 401 (never a 500).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from endpoints.lark.settings import LarkSettings
from gateway.plugin import Context, Request, Verdict, check_timestamp

__all__ = ["Opened", "decrypt", "open_body", "signature", "verify"]

MAX_NONCE_BYTES = 256
SIGNATURE_CHARS = 64  # hex SHA-256
_BLOCK = 16
# A body as Lark sends it, `{"encrypt":"<base64>"}` (JSON whitespace allowed): its one string has
# no escapes, so it is taken as is; any other body goes through the JSON parser.
_ENCRYPTED = re.compile(
    rb'[ \t\n\r]*\{[ \t\n\r]*"encrypt"[ \t\n\r]*:[ \t\n\r]*"([A-Za-z0-9+/=]*)"[ \t\n\r]*\}[ \t\n\r]*'
)


def signature(timestamp: bytes, nonce: bytes, encrypt_key: bytes, body: bytes) -> str:
    """The hex `X-Lark-Signature` of a request."""
    return hashlib.sha256(timestamp + nonce + encrypt_key + body).hexdigest()


def decrypt(encrypt_key: str, encrypted: str | bytes) -> bytes | None:
    """The plaintext of an `encrypt` field, or None when it is not what Lark sends."""
    try:
        raw = base64.b64decode(encrypted, validate=True)
    except ValueError:  # not base64 (binascii.Error), or text that is not ASCII
        return None
    if len(raw) < 2 * _BLOCK or len(raw) % _BLOCK:
        return None
    key = hashlib.sha256(encrypt_key.encode()).digest()
    decryptor = Cipher(algorithms.AES(key), modes.CBC(raw[:_BLOCK])).decryptor()
    padded = decryptor.update(raw[_BLOCK:]) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        return None


def _json_object(raw: bytes) -> dict[str, Any] | None:
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return doc if isinstance(doc, dict) else None


@dataclass(frozen=True, slots=True)
class Opened:
    """A request body's event, and whether it came encrypted."""

    event: dict[str, Any]
    encrypted: bool


def open_body(body: bytes, settings: LarkSettings) -> Opened | str:
    """The event in a request body (decrypted), or why it is not one."""
    encrypted: str | bytes
    if (lark := _ENCRYPTED.fullmatch(body)) is not None:
        encrypted = lark[1]
    else:
        outer = _json_object(body)
        if outer is None:
            return "the body is not a JSON object"
        field = outer.get("encrypt")
        if field is None:
            return Opened(outer, encrypted=False)  # in the clear: only a url_verification may pass (see `verify`)
        if not isinstance(field, str):
            return "encrypt is not a string"
        encrypted = field
    plain = decrypt(settings.encrypt_key.get_secret_value(), encrypted)
    event = None if plain is None else _json_object(plain)
    return "the body does not decrypt with the Encrypt Key" if event is None else Opened(event, encrypted=True)


def _token_of(event: dict[str, Any]) -> object:
    header = event.get("header")
    return header.get("token") if isinstance(header, dict) else event.get("token")


def _token_ok(event: dict[str, Any], settings: LarkSettings) -> bool:
    if settings.verification_token is None:
        return True
    token = _token_of(event)
    expected = settings.verification_token.get_secret_value().encode()
    return isinstance(token, str) and hmac.compare_digest(token.encode(), expected)


def _signed(request: Request, settings: LarkSettings, now: float) -> bool:
    timestamp = request.headers.get_bytes("x-lark-request-timestamp")
    nonce = request.headers.get_bytes("x-lark-request-nonce")
    given = request.headers.get_bytes("x-lark-signature")
    if timestamp is None or nonce is None or given is None or len(nonce) > MAX_NONCE_BYTES:
        return False
    if not check_timestamp(timestamp, now) or len(given) != SIGNATURE_CHARS:
        return False
    expected = signature(timestamp, nonce, settings.encrypt_key.get_secret_value().encode(), request.body)
    return hmac.compare_digest(expected.encode("ascii"), given.lower())


async def verify(request: Request, ctx: Context[LarkSettings]) -> Verdict:
    settings = ctx.settings
    opened = open_body(request.body, settings)
    if isinstance(opened, str):
        return Verdict.failed(opened)
    if not _token_ok(opened.event, settings):
        return Verdict.failed("wrong or missing verification token")
    if opened.event.get("type") == "url_verification":
        if not opened.encrypted and settings.verification_token is None:
            return Verdict.failed("an unencrypted url_verification needs verification_token to be set")
        return Verdict.ok(verified=opened)
    if not opened.encrypted:
        return Verdict.failed("events must be encrypted (set the Encrypt Key in the Lark console)")
    if not _signed(request, settings, ctx.clock.time()):
        return Verdict.failed("bad, stale or missing Lark signature")
    return Verdict.ok(verified=opened)
