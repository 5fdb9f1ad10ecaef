"""Endpoint URL tokens: random, self-authenticating, and stored only as a digest (security.md §5).

A token is `<random>.<tag>`:

- `random` is `secrets.token_urlsafe(18)`: 144 bits from the CSPRNG, 24 base64url chars;
- `tag` is the first 16 bytes of HMAC-SHA256(k, random), base64url without padding (22 chars),
  where k = HKDF(master key, "dify-gateway endpoint-token v1"). The derivation keeps the tag key
  independent of the keys `crypto.SecretBox` derives from the same master keys.

`is_authentic` checks the tag on the CPU alone, so guessed or mangled tokens are turned away
before any store lookup. The store indexes `digest(token)`, so a leaked database doesn't leak
live URLs; logs carry `short_hash(token)`. The URL is not authentication: platform signature
checks still apply.

The signature is the standard library's `hmac` on purpose, not itsdangerous: its `Signer` would
need a custom truncating algorithm to keep the 16-byte tags (so URLs already handed out stay
valid), compares decoded bytes (two spellings of one tag would both pass), and brings nothing
else we use (timestamps, serializers).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence

from gateway.security.crypto import check_master_keys, derive_key

__all__ = ["MAX_TOKEN_CHARS", "TOKEN_SEPARATOR", "EndpointTokens", "digest", "redact_path", "short_hash"]

TOKEN_SEPARATOR = "."  # URL-safe and outside the base64url alphabet
MAX_TOKEN_CHARS = 200
TOKEN_PURPOSE = "dify-gateway endpoint-token v1"
_RANDOM_BYTES = 18
_MIN_RANDOM_CHARS = 22  # 128+ bits
_TAG_BYTES = 16
_TAG_CHARS = 22  # base64url of 16 bytes, unpadded
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")


def digest(token: str) -> str:
    """Hex SHA-256 of `token`: what the store indexes (never raises, whatever the text)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def short_hash(token: str) -> str:
    """The first 8 hex chars of `digest(token)`, for logs."""
    return digest(token)[:8]


def redact_path(path: str) -> str:
    """`/e/<token>/rest` → `/e/<8 hex of sha256(token)>…/rest`, for logs; other paths unchanged."""
    if not path.startswith("/e/"):
        return path
    token, sep, rest = path[3:].partition("/")
    return f"/e/{short_hash(token)}…{sep}{rest}"


def _tag(key: bytes, random_part: str) -> str:
    mac = hmac.new(key, random_part.encode("ascii"), hashlib.sha256).digest()[:_TAG_BYTES]
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")


class EndpointTokens:
    """Mints and checks endpoint URL tokens; keys are master keys, oldest to newest.

    Tokens are signed with the newest key and accepted under any listed key, so a key can be
    rotated by appending the new one and dropping the old one later.
    """

    __slots__ = ("_keys", "_masters")

    def __init__(self, keys: Sequence[bytes]) -> None:
        check_master_keys(keys, "signing endpoint tokens")
        self._masters = tuple(keys)
        self._keys = tuple(derive_key(key, TOKEN_PURPOSE) for key in keys)

    def __repr__(self) -> str:
        return f"EndpointTokens(<{len(self._keys)} key(s)>)"

    digest = staticmethod(digest)
    short_hash = staticmethod(short_hash)

    def mint(self) -> str:
        """A new token, signed with the newest key."""
        random_part = secrets.token_urlsafe(_RANDOM_BYTES)
        return random_part + TOKEN_SEPARATOR + _tag(self._keys[-1], random_part)

    def signed_with_newest(self, token: str) -> bool:
        """True if `token` is authentic under the newest key (an older key can then be dropped)."""
        return self.is_authentic(token) and EndpointTokens(self._masters[-1:]).is_authentic(token)

    def is_authentic(self, token: str) -> bool:
        """True if `token` carries a valid tag under any key; False (never an error) otherwise."""
        if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS or not token.isascii():
            return False
        parts = token.split(TOKEN_SEPARATOR)
        if len(parts) != 2:
            return False
        random_part, tag = parts
        if len(random_part) < _MIN_RANDOM_CHARS or len(tag) != _TAG_CHARS:
            return False
        if _BASE64URL.fullmatch(random_part) is None or _BASE64URL.fullmatch(tag) is None:
            return False
        presented = tag.encode("ascii")
        return any(hmac.compare_digest(_tag(key, random_part).encode("ascii"), presented) for key in self._keys)
