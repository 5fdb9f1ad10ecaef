"""Reverse calls of a Dify plugin (`self.session.app.chat.invoke(...)`, `self.session.storage.get(...)`).

Served outside Dify: `app` (chat, completion and workflow apps; streaming and blocking) and
`fetch_app`, through the endpoint's `ctx.apps` (our Dify client: retries, breaker, fallback) and
only for the apps bound to the endpoint; and `storage`, in the gateway's store. Whether a kind may
be used is decided by the plugin's permissions, the same `Permission` check every gateway plugin
gets (the manifest's `resource.permission` becomes the plugin's permissions): an undeclared kind
is answered with Dify's own permission-denied text. The kinds that need Dify itself (models,
tools, workflow nodes, file uploads) are refused with a message saying so.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Collection, Mapping
from typing import Any

from gateway.dify.events import MalformedEvent, PingEvent, UnknownEvent
from gateway.dify.models import CHAT_MODES, Answer, AskRequest
from gateway.difyplugins.runtime.connection import ReverseCallError
from gateway.difyplugins.runtime.storage import InstallationStorage
from gateway.exceptions import PermissionDenied
from gateway.host.context import PluginContext

__all__ = ["SERVED_KINDS", "ReverseCalls", "permission_denied"]

logger = logging.getLogger(__name__)

SERVED_KINDS = frozenset({"app", "fetch_app", "storage"})

# Each reverse-call kind and the manifest permission (Dify's word for it) that allows it.
_PERMISSION_OF = {
    "app": "app",
    "fetch_app": "app",
    "storage": "storage",
    "tool": "tool",
    "llm": "llm",
    "llm_structured_output": "llm",
    "system_summary": "llm",
    "text_embedding": "text_embedding",
    "multimodal_embedding": "text_embedding",
    "rerank": "rerank",
    "multimodal_rerank": "rerank",
    "tts": "tts",
    "speech2text": "speech2text",
    "moderation": "moderation",
    "node_parameter_extractor": "node",
    "node_question_classifier": "node",
    "upload_file": "storage",
}


def permission_denied(kind: str) -> str:
    """Dify's answer to a reverse call the manifest does not allow."""
    return f"permission denied, you need to enable {_PERMISSION_OF.get(kind, kind)} access in plugin manifest"


class ReverseCalls:
    """The reverse calls of one endpoint request.

    `declared`: the manifest permissions (`app`, `storage`, `llm`, `tool`, …); `selectors`: the
    app-selector values the plugin was given (`{"app_id": NAME}`) are bound app names.
    """

    def __init__(
        self,
        *,
        ctx: PluginContext,
        storage: InstallationStorage,
        declared: Collection[str],
        user: str,
    ) -> None:
        self._ctx = ctx
        self._storage = storage
        self._declared = frozenset(declared)
        self._user = user

    async def __call__(self, invoke: dict[str, Any]) -> AsyncIterator[Any]:
        kind = str(invoke.get("type", ""))
        request = invoke.get("request")
        if not isinstance(request, dict):
            raise ReverseCallError(f"a {kind} call needs a request object")
        if kind not in SERVED_KINDS:
            if _PERMISSION_OF.get(kind) not in self._declared:
                raise ReverseCallError(permission_denied(kind))
            raise ReverseCallError(
                f"permission denied, {kind} calls are served only inside Dify: "
                "outside it the gateway serves app, fetch_app and storage"
            )
        try:
            if kind == "storage":
                async for item in self._storage_call(request):
                    yield item
            elif kind == "fetch_app":
                yield self._fetch_app(request)
            else:
                async for item in self._app_call(request):
                    yield item
        except PermissionDenied:
            raise ReverseCallError(permission_denied(kind)) from None

    # -- storage -----------------------------------------------------------------------------------

    async def _storage_call(self, request: dict[str, Any]) -> AsyncIterator[Any]:
        _ = self._ctx.storage  # the permission check every plugin gets (PermissionDenied if undeclared)
        opt, key = request.get("opt"), request.get("key")
        if not isinstance(key, str):
            raise ReverseCallError("a storage call needs a key")
        if opt == "set":
            value = request.get("value")
            if not isinstance(value, str):
                raise ReverseCallError("a storage set needs a hex value")
            await self._storage.set(key, value)
            yield {"data": "ok"}
        elif opt == "get":
            found = await self._storage.get(key)
            if found is None:
                raise ReverseCallError(f"storage key {key!r} not found")
            yield {"data": found}
        elif opt == "del":
            await self._storage.delete(key)
            yield {"data": "ok"}
        elif opt == "exist":
            yield {"data": await self._storage.exists(key)}
        else:
            raise ReverseCallError(f"unknown storage operation {str(opt)[:20]!r}")

    # -- apps --------------------------------------------------------------------------------------

    def _app_name(self, request: Mapping[str, Any]) -> str:
        app_id = request.get("app_id")
        apps = self._ctx.apps  # the permission check every plugin gets
        if not isinstance(app_id, str) or app_id not in apps.names:
            raise ReverseCallError(f"app {str(app_id)[:64]!r} is not bound to this endpoint")
        return app_id

    def _fetch_app(self, request: Mapping[str, Any]) -> dict[str, Any]:
        info = self._ctx.apps.get(self._app_name(request))
        return {"data": {"id": info.name, "name": info.name, "mode": info.mode}}

    async def _app_call(self, request: Mapping[str, Any]) -> AsyncIterator[Any]:
        name = self._app_name(request)
        info = self._ctx.apps.get(name)
        inputs = request.get("inputs") or {}
        query = request.get("query") or ""
        conversation_id = request.get("conversation_id") or None
        user = request.get("user") or self._user
        files = request.get("files") or ()
        if not isinstance(inputs, dict) or not isinstance(query, str) or not isinstance(user, str):
            raise ReverseCallError("an app call needs inputs as an object and query and user as strings")
        if conversation_id is not None and not isinstance(conversation_id, str):
            raise ReverseCallError("conversation_id must be a string")
        if not isinstance(files, list | tuple) or not all(isinstance(f, dict) for f in files):
            raise ReverseCallError("files must be a list of objects")
        chat = info.mode in CHAT_MODES
        ask = AskRequest(
            user=user,
            query=query if info.mode != "workflow" else "",
            inputs=inputs,
            conversation_id=conversation_id if chat else None,
            files=tuple(files),
        )
        streaming = request.get("response_mode", "blocking") == "streaming"
        async with self._ctx.apps.open(ask, app=name) as stream:
            if streaming:
                async for event in stream.events():
                    if isinstance(event, PingEvent | MalformedEvent):
                        continue
                    if isinstance(event, UnknownEvent):
                        yield {**event.raw, "event": event.event}
                    else:
                        yield event.model_dump(mode="json")
                return
            answer = await stream.collect()
        yield _blocking(answer)


def _blocking(answer: Answer) -> dict[str, Any]:
    """The body of Dify's blocking answer, for the app's mode (dify-api.md §3)."""
    metadata: dict[str, Any] = {"retriever_resources": [dict(r) for r in answer.retriever_resources]}
    if answer.usage is not None:
        metadata["usage"] = answer.usage.model_dump(mode="json")
    if answer.mode == "workflow":
        return {
            "task_id": answer.task_id,
            "workflow_run_id": answer.workflow_run_id,
            "data": {
                "id": answer.workflow_run_id,
                "status": "succeeded" if answer.complete else "stopped",
                "outputs": dict(answer.outputs or {}),
            },
        }
    body: dict[str, Any] = {
        "event": "message",
        "task_id": answer.task_id,
        "id": answer.message_id,
        "message_id": answer.message_id,
        "mode": answer.mode,
        "answer": answer.text,
        "metadata": metadata,
    }
    if answer.mode != "completion":
        body["conversation_id"] = answer.conversation_id
    return body
