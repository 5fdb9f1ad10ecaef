"""Moved to the plugin test kit: `gateway.testing.platforms.slack` (this name stays for old imports)."""

from gateway.testing.platforms.slack import FakeSlack as FakeSlack, SlackCall as SlackCall, SlackMessage as SlackMessage
