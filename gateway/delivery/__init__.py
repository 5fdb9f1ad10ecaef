"""Outbound signed callbacks (Standard Webhooks): building, sending and scheduling deliveries.

`callbacks` makes one SSRF-safe, signed POST and classifies the answer as an `Outcome`;
`retry` is pure and says when to try again (a Svix-like schedule with jitter, honouring the
receiver's `Retry-After`) and when to give up; `callback_jobs` runs each attempt as a durable job.
The rules are in platforms.md §4 and security.md §6. `chat` shows streamed answers on chat platforms.
"""

from gateway.delivery.chat import ChatAdapter as ChatAdapter, ChatRules as ChatRules, deliver as deliver
