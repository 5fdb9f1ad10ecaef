"""The `telegram` plugin: a Telegram bot chats with a Dify app, answers streaming natively.

- Every update must carry `X-Telegram-Bot-Api-Secret-Token` equal to the endpoint's
  `secret_token` (generated at creation, handed to Telegram by `telegram connect`), compared in
  constant time; without a configured secret every request is refused (401).
- A message the bot may answer is durably queued as an `answer` job keyed by its `update_id`
  (Telegram's retries and replicas share the one job), then acknowledged with 200; the job
  streams the answer (`answer.py`). Updates that need no answer are acknowledged at once.
- `dify-gateway telegram connect|status|disconnect ENDPOINT` (`setup.py`).
"""

from __future__ import annotations

import hmac

from endpoints.telegram.answer import answer_update
from endpoints.telegram.bot import known
from endpoints.telegram.settings import TelegramSettings, generate_secret_token
from endpoints.telegram.setup import connect, disconnect, status
from endpoints.telegram.updates import parse_update
from gateway.plugin import BadRequest, Context, Permission, Plugin, Request, Response, Verdict

__all__ = ["TelegramSettings", "plugin"]

ANSWER_ATTEMPTS = 3  # a rerun asks Dify again: don't repeat that many times
SECRET_HEADER = "x-telegram-bot-api-secret-token"


async def verify(request: Request, ctx: Context[TelegramSettings]) -> Verdict:
    secret = ctx.settings.secret_token
    if secret is None:
        return Verdict.failed("secret_token is not set on this endpoint")
    given = request.headers.get_bytes(SECRET_HEADER)
    if given is None:
        return Verdict.failed("missing X-Telegram-Bot-Api-Secret-Token")
    if not hmac.compare_digest(secret.get_secret_value().encode(), given):
        return Verdict.failed("wrong X-Telegram-Bot-Api-Secret-Token")
    return Verdict.ok()


plugin = Plugin(
    "telegram",
    settings=TelegramSettings,
    verifier=verify,
    permissions={Permission.APPS, Permission.JOBS, Permission.STORAGE, Permission.HTTP},
    description="A Telegram bot: private chats, group mentions, replies and commands, answered as they stream.",
    min_apps=1,
    generated={"secret_token": generate_secret_token},
    url_hint="Telegram webhook: {url}  (set it with: dify-gateway telegram connect ENDPOINT_ID)",
)
plugin.job("answer")(answer_update)
plugin.action(
    "connect",
    help="Point the bot's webhook at this endpoint and register its commands",
    flags={"drop-pending": "Drop the updates Telegram queued while no webhook answered"},
)(connect)
plugin.action("status", help="Show the bot's webhook: where it points, updates waiting, the last error")(status)
plugin.action(
    "disconnect",
    help="Remove the bot's webhook",
    flags={"drop-pending": "Also drop the updates Telegram queued"},
)(disconnect)


@plugin.route("/", methods=["POST"])
async def webhook(request: Request, ctx: Context[TelegramSettings]) -> Response:
    update = request.json()
    if not isinstance(update, dict):
        raise BadRequest("a Telegram update is a JSON object")
    message = parse_update(update)
    if isinstance(message, str):
        if message == "no update_id":
            raise BadRequest("a Telegram update has an integer update_id")
        return Response.empty(200)
    if ctx.settings.bot_token is None:
        ctx.logger.warning("a message arrived but bot_token is not set; it is not answered")
        return Response.empty(200)
    bot = await known(ctx.storage, ctx.settings.bot_token.get_secret_value())
    if bot is not None and not message.addressed(bot):
        return Response.empty(200)  # a group message for others: no job
    # Durable first, then the ack: a retry of this update (any replica) finds the same job.
    await ctx.jobs.enqueue(
        "answer", message.to_payload(), key=f"update:{message.update_id}", max_attempts=ANSWER_ATTEMPTS
    )
    return Response.empty(200)
