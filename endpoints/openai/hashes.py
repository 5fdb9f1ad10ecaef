"""How an `openai` endpoint keeps its API keys: SHA-256 digests, the initial one as the `api_key`
setting `sha256:<hex>` (used by the settings model and the key store alike)."""

from __future__ import annotations

import hashlib
import re

__all__ = ["HASH_SETTING", "hash_key", "setting_hash"]

HASH_SETTING = re.compile(r"sha256:([0-9a-f]{64})")


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def setting_hash(value: str | None) -> str | None:
    """The hex digest held by the `api_key` setting, if any."""
    match = HASH_SETTING.fullmatch(value or "")
    return match.group(1) if match else None
