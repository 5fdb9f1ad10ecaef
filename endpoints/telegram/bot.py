"""The bot's own identity (`getMe`), kept in the endpoint's storage (shared by replicas).

The ingress reads it without calling Telegram (`known`): with it, group messages that don't
address the bot are acknowledged and dropped without a job. Until it is known (before
`telegram connect` or the first answer), every message is queued and the job decides.

It is kept under the bot's id, the part of its token before the colon: given another bot's
token, the endpoint learns the new bot at once instead of telling mentions apart by the old one.
"""

from __future__ import annotations

import json

from endpoints.telegram.api import TelegramAPI, TelegramError
from endpoints.telegram.updates import BotIdentity
from gateway.plugin import Storage

__all__ = ["identity", "known"]

TTL = 24 * 3600.0


def _key(bot_token: str) -> str:
    return "bot:me:" + bot_token.partition(":")[0]  # a bot token is "<the bot's id>:<its secret>"


async def known(storage: Storage, bot_token: str) -> BotIdentity | None:
    """The bot of `bot_token`, if its identity is kept."""
    raw = await storage.get(_key(bot_token))
    try:
        doc = json.loads(raw) if raw else None
    except ValueError:
        return None
    if isinstance(doc, dict) and isinstance(doc.get("id"), int) and isinstance(doc.get("username"), str):
        return BotIdentity(doc["id"], doc["username"])
    return None


async def identity(api: TelegramAPI, storage: Storage, bot_token: str) -> BotIdentity:
    """The bot of `bot_token` (the token `api` calls with), from storage or from `getMe` (then stored)."""
    cached = await known(storage, bot_token)
    if cached is not None:
        return cached
    me = await api.call("getMe")
    if not isinstance(me, dict) or not isinstance(me.get("id"), int) or not isinstance(me.get("username"), str):
        raise TelegramError(0, "getMe did not describe a bot")
    await storage.set(_key(bot_token), json.dumps({"id": me["id"], "username": me["username"]}), ttl=TTL)
    return BotIdentity(me["id"], me["username"])
