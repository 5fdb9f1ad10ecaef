"""The name of the console's session cookie, kept apart so the plugin runtime can keep it from
plugins (its path is `/`) without loading the console."""

from __future__ import annotations

__all__ = ["COOKIE"]

COOKIE = "gw_console"
