"""The `openai` plugin: OpenAI clients (SDKs, LangChain, chat UIs) talk to Dify apps unchanged.

Give a client the base URL `{endpoint URL}/v1` and an API key of the endpoint:

- `GET /v1/models`, `GET /v1/models/{id}`: the bound apps (id = app name) and the broadcast model;
- `POST /v1/chat/completions`: streaming or not, in OpenAI's exact shapes, usage from Dify;
  `response_format` enforced (`structured.py`);
- `POST /v1/responses`, `GET /v1/responses/{id}`: the Responses API (`responses.py`);
- `POST /v1/completions`: legacy text completions, for completion apps (`completions.py`);
- every other path: an OpenAI-style 404.

Requests authenticate with `Authorization: Bearer <key>` only. The first key is generated when
the endpoint is created and shown once; `dify-gateway openai add-key|revoke-key|list-keys`
manage more (keys are stored as SHA-256 hashes, see `keys.py`). Errors are OpenAI error
objects. How messages become Dify calls: `translate.plan_call`; images and files (uploaded to the
app when inline): `files.py`; how turns continue one Dify conversation: `threads.py`; the
broadcast model: `broadcast.py`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from functools import wraps
from typing import Any

from endpoints.openai.broadcast import broadcast_apps, broadcast_completion, broadcast_model
from endpoints.openai.chat import Call, complete, dify_user
from endpoints.openai.completions import complete_text, parse_completion_request
from endpoints.openai.errors import OpenAIError, from_exception, json_response, model_not_found
from endpoints.openai.formats import chat_format
from endpoints.openai.keys import (
    KeyInfo,
    add_key,
    authenticate,
    generate_initial_key,
    list_keys,
    revoke_key,
    verified_key,
)
from endpoints.openai.limits import admit
from endpoints.openai.responses import create_response, parse_responses_request, stored_response
from endpoints.openai.settings import OpenAISettings
from endpoints.openai.structured import complete_structured
from endpoints.openai.translate import model_entry, parse_chat_request
from gateway.plugin import ALL_METHODS, BadRequest, Context, Permission, Plugin, Request, Response, Verdict

__all__ = ["OpenAISettings", "plugin"]


def _invalid_key() -> OpenAIError:
    return OpenAIError(
        401,
        "Incorrect API key provided. Send an API key of this endpoint as 'Authorization: Bearer <key>'.",
        code="invalid_api_key",
    )


async def verify(request: Request, ctx: Context[OpenAISettings]) -> Verdict:
    """Accept a known, unrevoked key of this endpoint; anything else gets OpenAI's 401."""
    key = await authenticate(request.headers, ctx)
    if key is None:
        return Verdict.failed("missing, unknown or revoked API key", response=_invalid_key().response())
    return Verdict.ok(verified=key)  # the handler's `request.verified`: it checks nothing again


plugin = Plugin(
    "openai",
    settings=OpenAISettings,
    verifier=verify,
    permissions={Permission.APPS, Permission.STORAGE},
    description="An OpenAI-compatible API (/v1/models, /v1/chat/completions, /v1/responses) in front of Dify apps.",
    min_apps=1,
    generated={"api_key": generate_initial_key},
    url_hint="OpenAI base URL: {url}/v1",
)

Handler = Callable[[Request, Context], Awaitable[Response]]


def _openai_errors(handler: Handler) -> Handler:
    """Every failure of `handler` as an OpenAI error object; upstream details only in the log."""

    @wraps(handler)
    async def run(request: Request, ctx: Context[OpenAISettings]) -> Response:
        try:
            return await handler(request, ctx)
        except Exception as exc:
            error = from_exception(exc)
            if error.status >= 500 and error.code == "internal_error":
                ctx.logger.exception("the openai plugin failed on %s", request.path)
            elif error.status >= 500 or error.status == 429:
                ctx.logger.warning("%s on %s: %s", error.code, request.path, getattr(exc, "message", exc))
            return error.response()

    return run


async def _key(request: Request, ctx: Context[OpenAISettings]) -> KeyInfo:
    """The key the verifier just accepted (no second lookup), or a fresh check without one."""
    key = await verified_key(request, ctx)
    if key is None:  # a handler reached without the verifier, and a key that does not pass
        raise _invalid_key()
    return key


def _models(ctx: Context[OpenAISettings], key: KeyInfo) -> list[str]:
    """The models `key` may use: its bound apps, and the broadcast model when it may ask one of them."""
    settings = ctx.settings
    bound = ctx.apps.names
    names = [name for name in bound if key.allows(name)]
    broadcast = broadcast_model(settings, bound)
    if broadcast is not None and key.allows(broadcast) and broadcast_apps(settings, bound, key):
        names.append(broadcast)
    return names


def _check_broadcast(ctx: Context[OpenAISettings], name: str | None = None) -> None:
    """Log a `broadcast_model` named like a bound app (for `name`, if given): it is refused, the app wins.

    The settings model can't see the bound apps, so this is caught where the name is used.
    """
    configured = ctx.settings.broadcast_model
    if configured and configured in ctx.apps.names and name in (None, configured):
        ctx.logger.warning(
            "broadcast_model %r names a bound app: requests for it go to the app and the broadcast model "
            "is off; rename it in the endpoint settings",
            configured,
        )


async def _created(ctx: Context[OpenAISettings], name: str) -> int:
    """When this endpoint first listed the model (stable, never 0)."""
    slot = f"model-created:{name}"
    raw = await ctx.storage.get(slot)
    if raw is None:
        await ctx.storage.set_if_absent(slot, str(int(ctx.clock.time())))
        raw = await ctx.storage.get(slot)
    return int(raw or ctx.clock.time())


@plugin.route("/v1/models", methods=["GET"])
@_openai_errors
async def models(request: Request, ctx: Context[OpenAISettings]) -> Response:
    key = await _key(request, ctx)
    _check_broadcast(ctx)
    data = [model_entry(name, await _created(ctx, name)) for name in _models(ctx, key)]
    return json_response({"object": "list", "data": data})


@plugin.route("/v1/models/{model}", methods=["GET"])
@_openai_errors
async def model(request: Request, ctx: Context[OpenAISettings]) -> Response:
    key = await _key(request, ctx)
    name = request.path_params["model"]
    _check_broadcast(ctx, name)
    if name not in _models(ctx, key):
        raise model_not_found(name)
    return json_response(model_entry(name, await _created(ctx, name)))


@plugin.route("/v1/chat/completions", methods=["POST"])
@_openai_errors
async def chat_completions(request: Request, ctx: Context[OpenAISettings]) -> Response:
    settings = ctx.settings
    key = await _key(request, ctx)
    body = request.json()
    chat = parse_chat_request(body)
    fmt = chat_format(body)
    _check_broadcast(ctx, chat.model)
    if chat.model not in _models(ctx, key):
        raise model_not_found(chat.model)
    call = Call(chat, key, dify_user(key.id, chat.user), int(request.received_at), settings)
    slot = await admit(ctx, key, settings)
    try:
        if chat.model == broadcast_model(settings, ctx.apps.names):  # never a bound app's name
            if fmt is not None:
                raise OpenAIError(400, "the broadcast model answers in text only", param="response_format")
            return await broadcast_completion(ctx, call, slot)
        if fmt is not None:
            return await complete_structured(ctx, call, chat.model, slot, fmt)
        return await complete(ctx, call, chat.model, slot)
    except BaseException:
        await slot.release()
        raise


def _check_model(ctx: Context[OpenAISettings], key: KeyInfo, model: str) -> None:
    """404 for a model the key may not use; 400 for the broadcast model (chat completions only)."""
    _check_broadcast(ctx, model)
    if model not in _models(ctx, key):
        raise model_not_found(model)
    if model == broadcast_model(ctx.settings, ctx.apps.names):
        raise OpenAIError(400, "the broadcast model is only served on /v1/chat/completions", param="model")


@plugin.route("/v1/responses", methods=["POST"])
@_openai_errors
async def responses_create(request: Request, ctx: Context[OpenAISettings]) -> Response:
    key = await _key(request, ctx)
    req = parse_responses_request(request.json())
    _check_model(ctx, key, req.chat.model)
    slot = await admit(ctx, key, ctx.settings)
    try:
        return await create_response(ctx, req, key, int(request.received_at), slot)
    except BaseException:
        await slot.release()
        raise


@plugin.route("/v1/completions", methods=["POST"])
@_openai_errors
async def completions(request: Request, ctx: Context[OpenAISettings]) -> Response:
    key = await _key(request, ctx)
    req = parse_completion_request(request.json())
    _check_model(ctx, key, req.model)
    slot = await admit(ctx, key, ctx.settings)
    try:
        return await complete_text(ctx, req, key, int(request.received_at), slot)
    except BaseException:
        await slot.release()
        raise


@plugin.route("/v1/responses/{response_id}", methods=["GET"])
@_openai_errors
async def responses_get(request: Request, ctx: Context[OpenAISettings]) -> Response:
    key = await _key(request, ctx)
    record = await stored_response(ctx, key, request.path_params["response_id"])
    return json_response(record["response"])


@plugin.route("/{path:path}", methods=ALL_METHODS)
@_openai_errors
async def unknown(request: Request, ctx: Context[OpenAISettings]) -> Response:
    raise OpenAIError(404, f"Invalid URL ({request.method} {request.path})", code="unknown_url")


# -- operator actions: dify-gateway openai add-key|revoke-key|list-keys ENDPOINT -------------------


@plugin.action(
    "add-key",
    help="Create an API key for this endpoint (printed once; only its hash is kept).",
    options={"label": "A note for operators", "models": "Comma-separated models the key may use (default: all)"},
)
async def add_key_action(ctx: Context[OpenAISettings], args: Mapping[str, str]) -> dict[str, Any]:
    return await add_key(ctx, label=args.get("label", ""), models=args.get("models"))


@plugin.action("revoke-key", help="Revoke an API key by id (see list-keys).", options={"key-id": "The key's id"})
async def revoke_key_action(ctx: Context[OpenAISettings], args: Mapping[str, str]) -> dict[str, Any]:
    key_id = args.get("key-id")
    if not key_id:
        raise BadRequest("--key-id is required")
    return await revoke_key(ctx, key_id)


@plugin.action("list-keys", help="List the endpoint's active API keys (ids and labels, never the keys).")
async def list_keys_action(ctx: Context[OpenAISettings], args: Mapping[str, str]) -> dict[str, Any]:
    return await list_keys(ctx)
