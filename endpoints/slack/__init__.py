"""The `slack` plugin: a Slack workspace chats with a Dify app.

One Request URL (the endpoint URL) takes everything Slack sends, each verified with the v0
signature (`verify.py`), told apart by its body:

- Events API (JSON): `url_verification` is answered with its challenge; a mention, a DM or a
  reply in a thread the bot answered in is durably queued as an `answer` job keyed by the
  `event_id` and acknowledged at once (Slack's retries and replicas share the one job); the job
  streams the answer into the message's thread (`answer.py`).
- Slash commands (form): acknowledged with an ephemeral "…thinking", answered by a `command` job
  through `response_url` (`command.py`); `/ask reset` forgets the conversation.
- Interactivity (form, `payload=`): acknowledged with 200; nothing acts on it yet.
- `ssl_check=1`: answered 200.

`/events`, `/commands` and `/interactivity` below the URL are accepted too. The operator action
`dify-gateway slack manifest ENDPOINT` prints the Slack app manifest (`manifest.py`).
"""

from __future__ import annotations

from endpoints.slack.answer import answer_event
from endpoints.slack.command import answer_command
from endpoints.slack.events import classify, parse_command, thread_key
from endpoints.slack.manifest import manifest_action
from endpoints.slack.render import is_reset
from endpoints.slack.settings import SlackSettings
from endpoints.slack.verify import is_ssl_check, verify
from gateway.plugin import BadRequest, Context, Permission, Plugin, Request, Response

__all__ = ["SlackSettings", "plugin"]

ANSWER_ATTEMPTS = 3  # a rerun asks Dify again: don't repeat that many times

plugin = Plugin(
    "slack",
    settings=SlackSettings,
    verifier=verify,
    permissions={Permission.APPS, Permission.JOBS, Permission.STORAGE, Permission.HTTP},
    description="A Slack bot: mentions, DMs, thread replies and a slash command, answered in threads as they stream.",
    min_apps=1,
    url_hint="Slack Request URL: {url}  (app manifest: dify-gateway slack manifest ENDPOINT_ID)",
)
plugin.job("answer")(answer_event)
plugin.job("command", secrets=("response_url",))(answer_command)
plugin.action("manifest", help="Print the Slack app manifest for this endpoint", options={"name": "App name"})(
    manifest_action
)


def _ephemeral(text: str) -> Response:
    return Response.json({"response_type": "ephemeral", "text": text})


def _is_json(request: Request) -> bool:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return media == "application/json" or (media == "" and request.body.lstrip()[:1] == b"{")


@plugin.route("/", methods=["POST"])
@plugin.route("/events", methods=["POST"])
@plugin.route("/commands", methods=["POST"])
@plugin.route("/interactivity", methods=["POST"])
async def inbound(request: Request, ctx: Context[SlackSettings]) -> Response:
    if _is_json(request):
        return await _event(request, ctx)
    if is_ssl_check(request):
        return Response.empty(200)
    form = request.form()
    if "payload" in form:
        return Response.empty(200)  # interactivity: acknowledged, not acted on yet
    if "command" in form:
        return await _command(form, request, ctx)
    raise BadRequest("not a Slack event, slash command or interactivity payload")


async def _event(request: Request, ctx: Context[SlackSettings]) -> Response:
    envelope = request.json()
    if not isinstance(envelope, dict):
        raise BadRequest("a Slack event is a JSON object")
    kind = envelope.get("type")
    if kind == "url_verification":
        challenge = envelope.get("challenge")
        if not isinstance(challenge, str):
            raise BadRequest("url_verification without a challenge")
        return Response.json({"challenge": challenge})
    if kind == "app_rate_limited":
        ctx.logger.warning("Slack is rate-limiting this app's events (over 30,000 per hour)")
        return Response.empty(200)
    trigger = classify(envelope)
    if isinstance(trigger, str):
        return Response.empty(200)
    settings = ctx.settings
    if trigger.kind == "thread" and not (
        settings.follow_threads and await ctx.storage.get(thread_key(trigger.team, trigger.channel, trigger.thread_ts))
    ):
        return Response.empty(200)
    if settings.bot_token is None:
        ctx.logger.warning("an event arrived but bot_token is not set; it is not answered")
        return Response.empty(200)
    # Durable first, then the ack: a retry of this event_id (any replica) finds the same job.
    await ctx.jobs.enqueue("answer", trigger.to_payload(), key=trigger.event_id, max_attempts=ANSWER_ATTEMPTS)
    return Response.empty(200)


async def _command(form: dict[str, list[str]], request: Request, ctx: Context[SlackSettings]) -> Response:
    command = parse_command(form, request.received_at)
    if isinstance(command, str):
        raise BadRequest(f"slash command {command}")
    settings = ctx.settings
    if not command.text:
        return _ephemeral(
            f"Ask a question: `{command.command} what is our refund policy?` (`{command.command} reset` starts over)"
        )
    if is_reset(command.text):
        await ctx.apps.reset(command.conversation_key, user=command.dify_user)  # the speaker's own only
        return _ephemeral("Conversation reset: your next question starts a new conversation.")
    if not settings.allows_response_url(command.response_url):
        ctx.logger.warning("a slash command's response_url is not a Slack URL; refused")
        raise BadRequest("response_url is not a Slack URL")
    await ctx.jobs.enqueue("command", command.to_payload(), key=command.key, max_attempts=ANSWER_ATTEMPTS)
    return _ephemeral(f"{_quote(command.text)}\n{settings.thinking_text}")


def _quote(text: str) -> str:
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return "\n".join(">" + line for line in escaped.split("\n")[:5])  # a literal ">" quotes in mrkdwn
