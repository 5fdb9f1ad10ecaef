"""Webhook endpoint gateway and chat-bot bridge for Dify apps."""

__version__ = "0.1.0"
