"""The Dify simulator as a Starlette app (a simulator of Dify's Service API, for tests and benches).

Routes (all under `/v1` need `Authorization: Bearer <one of config.api_keys>`):

    GET  /v1/info                           app name, mode
    GET  /v1/parameters                     the input form, moderation, Dify's default limits
    POST /v1/chat-messages                  chat, agent-chat, agent, advanced-chat
    POST /v1/completion-messages            completion
    POST /v1/workflows/run                  workflow (also /v1/workflows/{workflow_id}/run)
    POST /v1/chat-messages/{task_id}/stop   (and completion-messages/..., workflows/tasks/...)
    GET  /v1/messages, GET /v1/conversations, DELETE /v1/conversations/{id}
    POST /v1/files/upload                   multipart `file` + `user` (with config.file_upload)

    GET  /_sim/stats     counters, stops received (task_id, user), faults injected, recent requests
    POST /_sim/reset     forget conversations and counters
    POST /_sim/faults    {"fail_next": N, "fault": "500"}: fail the next N generation requests
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.clock import Clock, SystemClock
from gateway.simulator.config import FAULTS, SimulatorConfig
from gateway.simulator.generation import Generator, Route as GenerationRoute
from gateway.simulator.responses import dify_error
from gateway.simulator.script import MODERATED_ANSWER
from gateway.simulator.state import SimulatorState

__all__ = ["create_simulator_app"]

_Handler = Callable[[Request, dict[str, Any]], Awaitable[Response]]


class _Simulator:
    def __init__(self, config: SimulatorConfig, clock: Clock) -> None:
        self.config = config
        self.state = SimulatorState(config)
        self.generator = Generator(self.state, clock)

    # --- plumbing ------------------------------------------------------------------------------

    def _auth(self, request: Request) -> Response | None:
        header = request.headers.get("authorization", "")
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not key:
            return dify_error(401, "unauthorized", "Authorization header must be provided and start with 'Bearer'")
        if key.strip() not in self.config.api_keys:
            return dify_error(401, "unauthorized", "Access token is invalid")
        return None

    async def _body(self, request: Request) -> dict[str, Any] | Response:
        raw = await request.body()
        if not raw:
            return {}
        try:
            body = await request.json()
        except ValueError:
            return dify_error(400, "invalid_param", "The request body is not valid JSON.")
        if not isinstance(body, dict):
            return dify_error(400, "invalid_param", "The request body must be a JSON object.")
        return body

    async def _enter(self, request: Request) -> dict[str, Any] | Response:
        body = await self._body(request)
        self.state.count(request.method, request.url.path, body if isinstance(body, dict) else None)
        denied = self._auth(request)  # auth first, like Dify
        return denied if denied is not None else body

    # --- Dify API ------------------------------------------------------------------------------

    async def info(self, request: Request, body: dict[str, Any]) -> Response:
        return JSONResponse(
            {
                "name": self.config.app_name,
                "description": "A simulated Dify app",
                "tags": ["simulator"],
                "mode": self.config.mode,
                "author_name": "dify-gateway",
            }
        )

    async def parameters(self, request: Request, body: dict[str, Any]) -> Response:
        off = {"enabled": False}
        form = [
            {kind: {"variable": name, "label": name.title(), "required": required, "default": ""}}
            for name, kind, required in self.config.input_form
        ]
        words = self.config.moderated_words
        moderation = (
            {
                "enabled": True,
                "type": "keywords",
                "config": {
                    "keywords": "\n".join(words),
                    "inputs_config": {"enabled": False, "preset_response": ""},
                    "outputs_config": {"enabled": True, "preset_response": MODERATED_ANSWER},
                },
            }
            if words
            else off
        )
        return JSONResponse(
            {
                "opening_statement": "",
                "suggested_questions": [],
                "suggested_questions_after_answer": off,
                "speech_to_text": off,
                "text_to_speech": off,
                "retriever_resource": off,
                "annotation_reply": off,
                "more_like_this": off,
                "sensitive_word_avoidance": moderation,
                "user_input_form": form,
                "file_upload": self._file_upload(),
                "system_parameters": {
                    "file_size_limit": 15,
                    "image_file_size_limit": 10,
                    "audio_file_size_limit": 50,
                    "video_file_size_limit": 100,
                    "workflow_file_upload_limit": 10,
                },
            }
        )

    def _file_upload(self) -> dict[str, Any]:
        enabled = self.config.file_upload
        methods = ["remote_url", "local_file"] if enabled else ["remote_url"]
        return {
            "enabled": enabled,
            "allowed_file_types": ["image", "document"] if enabled else [],
            "allowed_file_extensions": [],
            "allowed_file_upload_methods": methods,
            "number_limits": 3,
            "image": {"enabled": enabled, "number_limits": 3, "transfer_methods": methods},
        }

    async def upload(self, request: Request) -> Response:
        """`POST /v1/files/upload`: multipart `file` + `user`, Dify's 201 record (or its errors)."""
        self.state.count(request.method, request.url.path, None)
        denied = self._auth(request)
        if denied is not None:
            return denied
        if not self.config.file_upload:
            return dify_error(403, "forbidden", "file upload is not enabled for this app")
        async with request.form(max_part_size=self.config.max_upload_bytes + 1) as form:
            file, user = form.get("file"), form.get("user")
            if not isinstance(file, UploadFile):
                return dify_error(400, "no_file_uploaded", "Please upload your file.")
            if not isinstance(user, str) or not user:
                return dify_error(400, "invalid_param", "Arg user must be provided.")
            data = await file.read()
        if len(data) > self.config.max_upload_bytes:
            return dify_error(413, "file_too_large", "File size exceeded.")
        mime = file.content_type or "application/octet-stream"
        if not mime.startswith(("image/", "text/", "application/pdf", "application/json")):
            return dify_error(415, "unsupported_file_type", "File type not allowed.")
        name = file.filename or "file"
        upload_id = str(uuid.uuid4())
        record: dict[str, Any] = {
            "id": upload_id,
            "name": name,
            "size": len(data),
            "extension": name.rsplit(".", 1)[-1] if "." in name else "",
            "mime_type": mime,
            "created_by": user,
            "created_at": int(self.generator.clock.time()),
            "preview_url": None,
            "source_url": None,
        }
        self.state.uploads[upload_id] = record
        return JSONResponse(record, status_code=201)

    def _api(self, handler: _Handler) -> Callable[[Request], Awaitable[Response]]:
        """Wrap a `/v1` handler: count the request, check the key, parse the JSON body."""

        async def endpoint(request: Request) -> Response:
            entered = await self._enter(request)
            if isinstance(entered, Response):
                return entered
            return await handler(request, entered)

        return endpoint

    def _generation(self, route: GenerationRoute) -> _Handler:
        async def handler(request: Request, body: dict[str, Any]) -> Response:
            return await self.generator.handle(request, body, route)

        return handler

    def _stop(self, route: GenerationRoute) -> _Handler:
        async def handler(request: Request, body: dict[str, Any]) -> Response:
            return await self.generator.stop(request, body, route, request.path_params["task_id"])

        return handler

    async def messages(self, request: Request, body: dict[str, Any]) -> Response:
        conversation_id = request.query_params.get("conversation_id")
        user = request.query_params.get("user", "")
        if not conversation_id:
            return dify_error(400, "invalid_param", "conversation_id is required")
        conversation = self.state.conversations.get(conversation_id)
        if conversation is None or conversation.user != user:
            return dify_error(404, "not_found", "Conversation Not Exists.")
        limit = _limit(request)
        page = conversation.messages[-limit:]  # Dify pages from the newest, oldest first within a page
        return JSONResponse({"limit": limit, "has_more": len(conversation.messages) > limit, "data": page})

    async def conversations(self, request: Request, body: dict[str, Any]) -> Response:
        user = request.query_params.get("user", "")
        limit = _limit(request)
        mine = [c for c in self.state.conversations.values() if c.user == user]
        mine.sort(key=lambda c: c.created_at, reverse=True)
        data = [
            {
                "id": c.id,
                "name": c.name,
                "inputs": c.inputs,
                "status": "normal",
                "introduction": "",
                "created_at": c.created_at,
                "updated_at": c.created_at,
            }
            for c in mine[:limit]
        ]
        return JSONResponse({"limit": limit, "has_more": len(mine) > limit, "data": data})

    async def delete_conversation(self, request: Request, body: dict[str, Any]) -> Response:
        user = body.get("user") or request.query_params.get("user", "")
        conversation_id = request.path_params["conversation_id"]
        conversation = self.state.conversations.get(conversation_id)
        if conversation is None or conversation.user != user:
            return dify_error(404, "not_found", "Conversation Not Exists.")
        del self.state.conversations[conversation_id]
        return Response(status_code=204)

    # --- control -------------------------------------------------------------------------------

    async def sim_stats(self, request: Request) -> Response:
        return JSONResponse(self.state.stats())

    async def sim_reset(self, request: Request) -> Response:
        self.state.reset()
        return JSONResponse({"result": "success"})

    async def sim_faults(self, request: Request) -> Response:
        body = await self._body(request)
        if isinstance(body, Response):
            return body
        fail_next, fault = body.get("fail_next", 0), body.get("fault", "500")
        if not isinstance(fail_next, int) or fail_next < 0 or fault not in FAULTS:
            return dify_error(400, "invalid_param", f"fail_next must be >= 0 and fault one of {sorted(FAULTS)}")
        self.state.fail_next, self.state.fail_with = fail_next, fault
        return JSONResponse({"fail_next": fail_next, "fault": fault})


def _limit(request: Request) -> int:
    try:
        return max(1, min(100, int(request.query_params.get("limit", "20"))))
    except ValueError:
        return 20


def create_simulator_app(config: SimulatorConfig | None = None, *, clock: Clock | None = None) -> Starlette:
    """Build a Dify simulator app. `clock` paces tokens and pings (a `FakeClock` makes them instant)."""
    sim = _Simulator(config or SimulatorConfig(), clock or SystemClock())
    api = sim._api
    routes = [
        Route("/v1/info", api(sim.info), methods=["GET"]),
        Route("/v1/parameters", api(sim.parameters), methods=["GET"]),
        Route("/v1/chat-messages", api(sim._generation("chat")), methods=["POST"]),
        Route("/v1/completion-messages", api(sim._generation("completion")), methods=["POST"]),
        Route("/v1/workflows/run", api(sim._generation("workflow")), methods=["POST"]),
        Route("/v1/workflows/{workflow_id}/run", api(sim._generation("workflow")), methods=["POST"]),
        Route("/v1/chat-messages/{task_id}/stop", api(sim._stop("chat")), methods=["POST"]),
        Route("/v1/completion-messages/{task_id}/stop", api(sim._stop("completion")), methods=["POST"]),
        Route("/v1/workflows/tasks/{task_id}/stop", api(sim._stop("workflow")), methods=["POST"]),
        Route("/v1/files/upload", sim.upload, methods=["POST"]),
        Route("/v1/messages", api(sim.messages), methods=["GET"]),
        Route("/v1/conversations", api(sim.conversations), methods=["GET"]),
        Route("/v1/conversations/{conversation_id}", api(sim.delete_conversation), methods=["DELETE"]),
        Route("/_sim/stats", sim.sim_stats, methods=["GET"]),
        Route("/_sim/reset", sim.sim_reset, methods=["POST"]),
        Route("/_sim/faults", sim.sim_faults, methods=["POST"]),
    ]
    app = Starlette(routes=routes)
    app.state.simulator = sim.state  # for in-process tests; HTTP callers use /_sim/stats
    return app
