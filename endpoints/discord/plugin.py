"""The `discord` plugin: a Discord application's Interactions Endpoint URL, answering slash commands.

- Every request is verified first, PING included: Ed25519 (`X-Signature-Ed25519`) over
  `X-Signature-Timestamp` + the raw body with the application's public key, timestamp within
  ±300 s. Any failure answers 401: Discord probes endpoints with bad signatures and drops URLs
  that accept them. PING answers PONG.
- `/ask question:…` answers "thinking…" (a deferred response) at once, after queuing a durable job
  keyed by the interaction id; the job streams the answer through the chat-delivery engine into
  the original response (edited about once a second), continues past 2,000 characters in
  follow-ups, and past the interaction token's 15 minutes in channel messages (with `bot_token`)
  or ends with a note. The ids of the messages it posts are kept in storage under the job's id:
  a rerun after a crash edits them instead of posting the answer a second time.
- `/reset` forgets the channel's conversation (per thread inside a thread).
- `dify-gateway discord register-commands ENDPOINT [--guild ID]` registers both commands.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from endpoints.discord.api import DiscordAPI, DiscordAPIError
from endpoints.discord.interactions import (
    APPLICATION_COMMAND,
    AUTOCOMPLETE,
    AUTOCOMPLETE_RESULT,
    DEFERRED_CHANNEL_MESSAGE,
    PING,
    PONG,
    QUESTION_OPTION,
    InteractionCommand,
    command_definitions,
    conversation_key,
    message_response,
    user_key,
)
from endpoints.discord.messages import DiscordMessages
from endpoints.discord.rendering import chat_rules
from endpoints.discord.settings import DiscordSettings
from gateway.plugin import (
    BadRequest,
    Context,
    Handover,
    JobError,
    JobInfo,
    Permission,
    Plugin,
    RateLimited,
    Request,
    Response,
    RetryJob,
    StoredMessages,
    UpstreamError,
    Verdict,
    deliver,
    verify_discord,
)

__all__ = ["plugin"]

RESET_DONE = "Done: your next question starts a new conversation here."


_VERIFIED = Verdict.ok()  # frozen: one for every verified interaction
_BAD_SIGNATURE = "bad or missing Discord signature"


async def verify(request: Request, ctx: Context[DiscordSettings]) -> Verdict:
    try:
        key = ctx.settings.verify_key  # decoded once per endpoint version
    except ValueError:  # a stored key that is not 64 hex characters verifies nothing
        return Verdict.failed(_BAD_SIGNATURE)
    headers = request.headers
    ok = verify_discord(
        key,
        headers.get("x-signature-ed25519"),
        headers.get("x-signature-timestamp"),
        request.body,
        ctx.clock.time(),
    )
    return _VERIFIED if ok else Verdict.failed(_BAD_SIGNATURE)


plugin = Plugin(
    "discord",
    settings=DiscordSettings,
    verifier=verify,
    permissions={Permission.APPS, Permission.JOBS, Permission.HTTP, Permission.STORAGE},
    description="A Discord app's Interactions Endpoint: /ask streams answers, /reset starts over.",
    min_apps=1,
    url_hint="Paste {url} as the Interactions Endpoint URL (Developer Portal → General Information), "
    "then run `dify-gateway discord register-commands ENDPOINT_ID`.",
)


# The two answers every interaction endpoint gives most, encoded once (as `Response.json` would).
_PONG = json.dumps({"type": PONG}, separators=(",", ":")).encode()
_DEFERRED = json.dumps({"type": DEFERRED_CHANNEL_MESSAGE}, separators=(",", ":")).encode()


def _json(body: bytes) -> Response:
    return Response(200, body, [], "application/json")


def _bot_token(settings: DiscordSettings) -> str | None:
    return settings.bot_token.get_secret_value() if settings.bot_token else None


@plugin.route("/", methods=["POST"])
async def interactions(request: Request, ctx: Context[DiscordSettings]) -> Response:
    payload = request.json()
    if not isinstance(payload, dict):
        raise BadRequest("an interaction must be a JSON object")
    kind = payload.get("type")
    if kind == PING:
        return _json(_PONG)
    if kind == AUTOCOMPLETE:  # none of our options autocomplete; answer rather than time out
        return Response.json({"type": AUTOCOMPLETE_RESULT, "data": {"choices": []}})
    if kind != APPLICATION_COMMAND:
        return Response.json(message_response("This interaction is not supported here.", ephemeral=True))
    try:
        command = InteractionCommand.from_payload(payload)
    except ValueError:
        raise BadRequest("malformed application command interaction") from None
    settings = ctx.settings
    if command.name == settings.reset_command:
        await ctx.apps.reset(command.conversation_key, user=command.user)
        return Response.json(message_response(RESET_DONE, ephemeral=True))
    if command.name != settings.ask_command:
        return Response.json(message_response(f"Unknown command /{command.name}.", ephemeral=True))
    question = command.options.get(QUESTION_OPTION, "").strip()
    if not question:
        return Response.json(message_response(f"Ask a question: /{settings.ask_command} question: …", ephemeral=True))
    job = {
        "id": command.id,
        "token": command.token,
        "application_id": command.application_id,
        "guild_id": command.guild_id,
        "channel_id": command.channel_id,
        "user_id": command.user_id,
        "question": question,
        "received_at": request.received_at,
    }
    # Durable before the ack; keyed by the interaction id so a repeat never answers twice.
    await ctx.jobs.enqueue("ask", job, key=command.id, max_attempts=3)
    return _json(_DEFERRED)


@plugin.job("ask", secrets=("token",))
async def ask(job: JobInfo, ctx: Context[DiscordSettings]) -> dict[str, Any]:
    """Stream one answer into the interaction's messages, past the token's deadline into channel
    messages (with a bot token). The messages posted are recorded under the job's id, so a rerun
    edits them; every call to Discord and every record is fenced by this run's lease."""
    data = job.payload
    settings = ctx.settings
    api = DiscordAPI(ctx.http, settings.api_base_url, clock=ctx.clock, bot_token=_bot_token(settings), fence=job.fence)
    deadline = float(data["received_at"]) + settings.token_deadline
    webhook = DiscordMessages.interaction(
        api, chat_rules(settings.edit_interval, expires_at=deadline), data["application_id"], data["token"]
    )
    handover = None
    if api.has_bot_token:
        channel = DiscordMessages.channel(api, chat_rules(settings.edit_interval), data["channel_id"])
        handover = Handover(channel, StoredMessages(ctx.storage, f"posted:{job.id}:channel", fence=job.lease))
    answer = ctx.apps.stream(
        data["question"],
        user=user_key(data["user_id"]),
        conversation_key=conversation_key(data["guild_id"], data["channel_id"]),
    )
    try:
        done = await deliver(
            answer,
            webhook,
            clock=ctx.clock,
            posted=StoredMessages(ctx.storage, f"posted:{job.id}:webhook", fence=job.lease),
            fence=job.fence,
            handover=handover,
        )
    except DiscordAPIError as exc:
        if exc.status == 0 or exc.status >= 500:  # unreachable or failing: a rerun edits what was posted
            raise RetryJob(f"Discord failed: {exc}") from None
        raise JobError(f"Discord refused the answer: {exc}") from None
    except RateLimited as exc:
        raise JobError(f"Discord refused the answer: still rate limited ({exc.retry_after:g} s)") from None
    status = "cut-off" if done.cut_off else "failed" if done.failure else "answered"
    return {"status": status, "chars": len(done.text), "channel": done.handed_over}


@plugin.action(
    "register-commands",
    help="Register the /ask and /reset slash commands with Discord (uses the endpoint's bot_token).",
    options={"guild": "Register in this guild only: updates instantly (for development)"},
)
async def register_commands(ctx: Context[DiscordSettings], args: Mapping[str, str]) -> str:
    settings = ctx.settings
    guild = (args.get("guild") or "").strip() or None
    if guild is not None and not re.fullmatch(r"[0-9]{5,25}", guild):
        raise BadRequest("--guild takes a guild (server) id: digits only")
    if settings.bot_token is None:
        raise BadRequest("registering commands needs the endpoint's bot_token (Developer Portal → Bot)")
    api = DiscordAPI(ctx.http, settings.api_base_url, clock=ctx.clock, bot_token=_bot_token(settings))
    commands = command_definitions(settings.ask_command, settings.reset_command, global_=guild is None)
    try:
        registered = await api.put_commands(settings.application_id, commands, guild)
    except DiscordAPIError as exc:
        hint = " (check bot_token and application_id)" if exc.status in (401, 403) else ""
        raise UpstreamError(f"Discord refused the commands: {exc}{hint}", upstream_status=exc.status) from None
    names = ", ".join(f"/{c.get('name')}" for c in registered if isinstance(c, dict))
    where = f"in guild {guild}" if guild else "globally (usable in servers and DMs with the bot)"
    return f"Registered {len(registered)} commands {where} for application {settings.application_id}: {names}"
