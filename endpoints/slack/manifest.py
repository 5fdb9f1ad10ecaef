"""The Slack app manifest for an endpoint: `dify-gateway slack manifest ENDPOINT`.

Paste it at api.slack.com/apps → Create New App → From a manifest (the JSON tab; JSON is also
valid YAML). The endpoint URL is the Request URL of the event subscriptions, the slash command
and interactivity, so the app is wired up the moment it is created.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from endpoints.slack.settings import SlackSettings
from gateway.plugin import BadRequest, Context

__all__ = ["BOT_EVENTS", "build_manifest", "manifest_action", "scopes"]

MAX_NAME = 35
BOT_EVENTS = ("app_mention", "message.im", "message.channels", "message.groups")


def scopes(settings: SlackSettings) -> list[str]:
    """The bot scopes the plugin needs (assistant:write only for the native streaming status)."""
    needed = [
        "app_mentions:read",  # app_mention events
        "chat:write",  # post, edit and stream answers
        "im:history",  # message.im: DMs
        "channels:history",  # message.channels: replies in followed threads
        "groups:history",  # message.groups: the same in private channels
        "commands",  # the slash command
    ]
    if settings.native_streaming:
        needed.append("assistant:write")  # assistant.threads.setStatus
    return needed


def build_manifest(url: str, settings: SlackSettings, *, name: str | None = None) -> dict[str, Any]:
    """A manifest Slack's "create app from manifest" accepts, wired to `url`."""
    display = name or settings.app_name
    features: dict[str, Any] = {
        "app_home": {"home_tab_enabled": False, "messages_tab_enabled": True, "messages_tab_read_only_enabled": False},
        "bot_user": {"display_name": display, "always_online": True},
        "slash_commands": [
            {
                "command": settings.slash_command,
                "url": url,
                "description": f"Ask {display}",
                "usage_hint": "your question (or: reset)",
                "should_escape": False,
            }
        ],
    }
    if settings.native_streaming:
        features["assistant_view"] = {"assistant_description": f"Answers from the Dify app behind {display}"}
    return {
        "_metadata": {"major_version": 1, "minor_version": 1},
        "display_information": {
            "name": display,
            "description": "Chat with a Dify app",
            "background_color": "#1c64f2",
        },
        "features": features,
        "oauth_config": {"scopes": {"bot": scopes(settings)}},
        "settings": {
            "event_subscriptions": {"request_url": url, "bot_events": list(BOT_EVENTS)},
            "interactivity": {"is_enabled": True, "request_url": url},
            "org_deploy_enabled": False,
            "socket_mode_enabled": False,
            "token_rotation_enabled": False,
        },
    }


async def manifest_action(ctx: Context[SlackSettings], args: Mapping[str, str]) -> str:
    """Print the app manifest of this endpoint (JSON)."""
    name = args.get("name")
    if name is not None and not 1 <= len(name.strip()) <= MAX_NAME:
        raise BadRequest(f"--name must be 1 to {MAX_NAME} characters (Slack's limit for app names)")
    manifest = build_manifest(ctx.endpoint.url, ctx.settings, name=name.strip() if name else None)
    return json.dumps(manifest, indent=2, ensure_ascii=False)
