"""Operator actions: `dify-gateway telegram connect|status|disconnect ENDPOINT`.

- `connect` points the bot's webhook at the endpoint (`setWebhook` with its URL, the secret
  token and the one update type the plugin answers, `message`; `--drop-pending` drops what
  Telegram queued meanwhile), registers the commands (`setMyCommands`) and remembers the bot's
  identity (`getMe`) for the ingress.
- `status` tells `getWebhookInfo` in plain words: where the webhook points, updates waiting,
  Telegram's last delivery error.
- `disconnect` removes the webhook (`deleteWebhook`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from endpoints.telegram.api import TelegramAPI, TelegramError
from endpoints.telegram.bot import identity
from endpoints.telegram.settings import TelegramSettings
from gateway.plugin import ActionResult, BadRequest, Context, UpstreamError

__all__ = ["ALLOWED_UPDATES", "COMMANDS", "connect", "disconnect", "status"]

ALLOWED_UPDATES = ["message"]  # edited messages, channel posts, … are not answered: not asked for
COMMANDS = [
    {"command": "ask", "description": "Ask a question"},
    {"command": "reset", "description": "Start a new conversation"},
    {"command": "start", "description": "Say hello"},
]


def _api(ctx: Context[TelegramSettings]) -> TelegramAPI:
    settings = ctx.settings
    if settings.bot_token is None:
        raise BadRequest("this needs the endpoint's bot_token (from @BotFather)")
    return TelegramAPI(ctx.http, settings.api_base_url, settings.bot_token.get_secret_value(), clock=ctx.clock)


def _refused(what: str, exc: TelegramError) -> UpstreamError:
    hint = " (check bot_token)" if exc.status in (401, 404) else ""
    return UpstreamError(f"Telegram refused {what}: {exc.description}{hint}", upstream_status=exc.status or None)


async def connect(ctx: Context[TelegramSettings], args: Mapping[str, str]) -> ActionResult:
    settings = ctx.settings
    if settings.secret_token is None:
        raise BadRequest("set the endpoint's secret_token first: without it every update is refused")
    api = _api(ctx)
    assert settings.bot_token is not None  # _api refused the endpoint otherwise
    drop = args.get("drop-pending") == "true"
    url = ctx.endpoint.url
    try:
        await api.call(
            "setWebhook",
            url=url,
            secret_token=settings.secret_token.get_secret_value(),
            allowed_updates=ALLOWED_UPDATES,
            drop_pending_updates=drop,
        )
        await api.call("setMyCommands", commands=COMMANDS)
        bot = await identity(api, ctx.storage, settings.bot_token.get_secret_value())
    except TelegramError as exc:
        raise _refused("the webhook", exc) from None
    dropped = " Updates waiting were dropped." if drop else ""
    text = (
        f"@{bot.username} now sends its messages to {url}.{dropped}\n"
        f"Commands registered: {', '.join('/' + c['command'] for c in COMMANDS)}.\n"
        "In groups the bot answers mentions, replies and commands (privacy mode on)."
    )
    return ActionResult(text, {"url": url, "bot": bot.username, "dropped_pending": drop})


def _ago(seconds: float) -> str:
    if seconds < 90:
        return f"{int(seconds)} s ago"
    if seconds < 5400:
        return f"{int(seconds // 60)} min ago"
    return f"{seconds / 3600:.1f} h ago"


async def status(ctx: Context[TelegramSettings], args: Mapping[str, str]) -> ActionResult:
    try:
        info = await _api(ctx).call("getWebhookInfo")
    except TelegramError as exc:
        raise _refused("getWebhookInfo", exc) from None
    doc: dict[str, Any] = info if isinstance(info, dict) else {}
    url = str(doc.get("url") or "")
    here = url == ctx.endpoint.url
    lines = [
        "Webhook: " + ("this endpoint" if here else f"another URL: {url}" if url else "not set (run telegram connect)")
    ]
    pending = doc.get("pending_update_count")
    lines.append(f"Updates waiting at Telegram: {pending if isinstance(pending, int) else 'unknown'}")
    error_at, error = doc.get("last_error_date"), doc.get("last_error_message")
    if isinstance(error_at, int) and error:
        try:
            when = datetime.fromtimestamp(error_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        except (OverflowError, ValueError, OSError):  # no calendar has that second
            lines.append(f"Last delivery error: {error} (at an unreadable time)")
        else:
            lines.append(f"Last delivery error: {error} ({when}, {_ago(max(0.0, ctx.clock.time() - error_at))})")
    else:
        lines.append("Last delivery error: none")
    allowed = doc.get("allowed_updates")
    if isinstance(allowed, list):
        lines.append("Update types: " + (", ".join(map(str, allowed)) or "all but chat_member and the like"))
    return ActionResult("\n".join(lines), doc, ok=here)


async def disconnect(ctx: Context[TelegramSettings], args: Mapping[str, str]) -> ActionResult:
    drop = args.get("drop-pending") == "true"
    try:
        await _api(ctx).call("deleteWebhook", drop_pending_updates=drop)
    except TelegramError as exc:
        raise _refused("deleteWebhook", exc) from None
    dropped = " Updates waiting were dropped." if drop else ""
    return ActionResult(f"Webhook removed: Telegram no longer sends this bot's messages here.{dropped}", {"ok": True})
