"""Request verification: Slack's v0 signature over the raw body (platforms.md §1.1).

Every request (events, slash commands, interactivity) carries `X-Slack-Signature: v0=<hex>` of
`v0:{X-Slack-Request-Timestamp}:{raw body}` keyed with the app's signing secret. The check is
`verify_slack` from the plugin contract: ASCII digits only for the timestamp, ±300 s, a
constant-time compare on bytes; anything missing, malformed, non-ASCII, truncated, stale or
wrong is a 401, never a 500. With no signing secret configured, everything is refused.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from endpoints.slack.settings import SlackSettings
from gateway.plugin import Context, Request, Verdict, verify_slack

__all__ = ["is_ssl_check", "verify"]

_SSL_CHECK_KEYS = frozenset({"ssl_check", "token"})


def is_ssl_check(request: Request) -> bool:
    """Slack's certificate probe of a slash command URL: `ssl_check=1` (and a token), nothing to act on."""
    body = request.body
    if len(body) > 512 or (not body.startswith(b"ssl_check=") and b"&ssl_check=" not in body):
        return False
    fields = dict(parse_qsl(body.decode("latin-1"), keep_blank_values=True))
    return fields.get("ssl_check") == "1" and set(fields) <= _SSL_CHECK_KEYS


async def verify(request: Request, ctx: Context[SlackSettings]) -> Verdict:
    settings = ctx.settings
    if is_ssl_check(request):
        return Verdict.skipped()  # answered 200 with no effect, as Bolt does
    if settings.signing_secret is None:
        return Verdict.failed("signing_secret is not set on this endpoint")
    timestamp = request.headers.get("x-slack-request-timestamp")
    signature = request.headers.get("x-slack-signature")
    now = ctx.clock.time()
    # The new signing secret and, during a rotation (`endpoints rotate-secret`), the old one; every
    # one is checked (no early exit), each compare constant-time.
    results = [verify_slack(s.encode(), timestamp, signature, request.body, now) for s in ctx.secrets("signing_secret")]
    return Verdict.ok() if any(results) else Verdict.failed("bad or missing Slack signature")
