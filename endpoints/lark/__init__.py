"""The `lark` plugin: a Lark / Feishu app's bot chats with a Dify app.

One Request URL (the endpoint URL, Events & Callbacks → Event Configuration) takes every event,
verified and decrypted first (`verify.py`: the Encrypt Key is required):

- `url_verification` is answered with its challenge at once;
- `im.message.receive_v1` (text and post messages) in p2p chats, and in groups when the bot is
  @mentioned, is durably queued as an `answer` job keyed by the `event_id` and acknowledged
  (Lark's redeliveries and replicas share the one job); the job streams the answer into a reply
  in the message's thread (`answer.py`, `cards.py`); "reset" forgets the speaker's conversation;
- everything else is acknowledged and ignored.

The operator action `dify-gateway lark check ENDPOINT` proves the credentials: it fetches a
tenant_access_token and the bot's info.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial

from endpoints.lark.answer import answer_message
from endpoints.lark.api import BOT_KEY, LarkAPIError, open_api
from endpoints.lark.events import classify
from endpoints.lark.settings import LarkSettings
from endpoints.lark.verify import Opened, open_body, verify
from gateway.plugin import BadRequest, Context, Permission, Plugin, RateLimited, Request, Response, UpstreamError

__all__ = ["LarkSettings", "plugin"]

ANSWER_ATTEMPTS = 3  # a rerun asks Dify again: don't repeat that many times
BOT_MEMORY_TTL = 60.0  # the bot's open_id, kept in this process (it changes only with the app)
# bot/v3/info `activate_status`: only 2 answers messages.
_ACTIVATION = {0: "awaiting installation", 1: "stopped by the tenant", 2: "enabled", 3: "awaiting activation"}

plugin = Plugin(
    "lark",
    settings=LarkSettings,
    verifier=verify,
    permissions={Permission.APPS, Permission.JOBS, Permission.STORAGE, Permission.HTTP},
    description="A Lark / Feishu bot: p2p messages and @mentions, answered in threads as CardKit cards stream.",
    min_apps=1,
    url_hint="Lark / Feishu Request URL (Events & Callbacks → Event Configuration): {url}  "
    "(check the credentials: dify-gateway lark check ENDPOINT_ID)",
)
plugin.job("answer")(answer_message)


async def _known_bot(ctx: Context[LarkSettings]) -> str | None:
    """The bot's open_id if known: from the endpoint's memory, read from storage at most once a minute."""
    return await ctx.memory.get_or_load(BOT_KEY, partial(ctx.storage.get, BOT_KEY), ttl=BOT_MEMORY_TTL)


@plugin.route("/", methods=["POST"])
async def events(request: Request, ctx: Context[LarkSettings]) -> Response:
    # The verifier decrypted the body to check it and handed the event on; only a request that
    # reached us some other way (none does: the route is verified) is opened here.
    opened = request.verified if isinstance(request.verified, Opened) else open_body(request.body, ctx.settings)
    if isinstance(opened, str):
        raise BadRequest(opened)
    event = opened.event
    if event.get("type") == "url_verification":
        challenge = event.get("challenge")
        if not isinstance(challenge, str):
            raise BadRequest("url_verification without a challenge")
        return Response.json({"challenge": challenge})
    trigger = classify(event)
    if isinstance(trigger, str):
        return _ack()
    if trigger.is_group and (bot := await _known_bot(ctx)) and not trigger.mentions_of(bot):
        return _ack()  # a mention of someone else (the job checks it when the bot is not known yet)
    # Durable first, then the ack: a redelivery of this event_id (any replica) finds the same job.
    await ctx.jobs.enqueue("answer", trigger.to_payload(), key=trigger.event_id, max_attempts=ANSWER_ATTEMPTS)
    return _ack()


def _ack() -> Response:
    """`{}`, what Lark is answered for an event: written out, not encoded on every ack."""
    return Response(body=b"{}", media_type="application/json")


@plugin.action("check", help="Prove the app's credentials: fetch a tenant_access_token and the bot's info")
async def check(ctx: Context[LarkSettings], args: Mapping[str, str]) -> str:
    settings = ctx.settings
    api = open_api(ctx.http, settings, ctx.storage, ctx.clock)
    try:
        token = await api.tokens.get(fresh=True)
        bot = await api.bot_info()
    except LarkAPIError as exc:
        hint = " (check app_id, app_secret and domain)" if not exc.retryable else ""
        raise UpstreamError(f"Lark refused: {exc}{hint}", upstream_status=exc.status or None) from None
    except RateLimited as exc:
        raise UpstreamError(f"Lark is rate limiting this app: try again in {exc.retry_after:g} s") from None
    await ctx.storage.set(BOT_KEY, bot["open_id"], ttl=24 * 3600.0)
    minutes = max(0, int((token.expires_at - ctx.clock.time()) // 60))
    status = bot.get("activate_status")
    active = _ACTIVATION.get(status, f"activate_status {status}") if isinstance(status, int) else "status unknown"
    return (
        f"Credentials work on {settings.api_base}: a tenant_access_token was fetched (valid {minutes} more minutes); "
        f"bot {bot.get('app_name') or '(no name)'!s} ({active}), open_id {bot['open_id']}."
    )
