"""Moved to the plugin test kit: `gateway.testing.platforms.slack` (this name stays for old imports)."""

from gateway.testing.platforms.slack import Call as Call, FakeSlack as FakeSlack, Message as Message
