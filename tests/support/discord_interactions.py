"""Discord interactions as Discord sends them: payloads, signed with PyNaCl like Discord signs them."""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

from nacl.encoding import HexEncoder
from nacl.signing import SigningKey

__all__ = ["APPLICATION_ID", "body_of", "command", "new_key", "public_key_hex", "signed_headers"]

APPLICATION_ID = "100000000000000001"
_ids = itertools.count(1_200_000_000_000_000_000)


def new_key() -> SigningKey:
    return SigningKey.generate()


def public_key_hex(key: SigningKey) -> str:
    return key.verify_key.encode(encoder=HexEncoder).decode()


def signed_headers(key: SigningKey, body: bytes, timestamp: int | str | None = None) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    signature = key.sign(ts.encode() + body).signature.hex()
    return {"x-signature-ed25519": signature, "x-signature-timestamp": ts, "content-type": "application/json"}


def command(
    name: str,
    question: str | None = None,
    *,
    token: str | None = None,
    guild: str | None = "1",
    channel: str = "42",
    user: str = "7",
    interaction_id: str | None = None,
) -> dict[str, Any]:
    """An APPLICATION_COMMAND interaction (`member.user` in a guild, `user` in a DM)."""
    iid = interaction_id or str(next(_ids))
    payload: dict[str, Any] = {
        "type": 2,
        "id": iid,
        "application_id": APPLICATION_ID,
        "token": token or f"itok-{iid}",
        "channel_id": channel,
        "channel": {"id": channel, "type": 0},
        "data": {"id": "9", "name": name, "type": 1},
        "version": 1,
    }
    if question is not None:
        payload["data"]["options"] = [{"type": 3, "name": "question", "value": question}]
    who = {"id": user, "username": f"user{user}", "discriminator": "0"}
    if guild is None:
        payload["user"] = who
    else:
        payload["guild_id"] = guild
        payload["member"] = {"user": who, "roles": []}
    return payload


def body_of(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()
