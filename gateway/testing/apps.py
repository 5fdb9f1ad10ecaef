"""`ctx.apps` answered by the Dify simulator, through the gateway's own Dify client: answers
stream as real Dify SSE and arrive as real `AnswerStream`s, and every call is recorded."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from gateway.clock import Clock
from gateway.dify.client import DifyClient
from gateway.dify.models import AskRequest, DifyApp
from gateway.plugin import Answer, AnswerStream, AppInfo, NotFound, UploadedFile, file_type
from gateway.records.appform import INPUT_MODES, InputField, query_input_for
from gateway.simulator.app import create_simulator_app
from gateway.simulator.config import SimulatorConfig
from gateway.testing.simulator import RunningSimulator

__all__ = ["AppCall", "SimulatedApps"]


@dataclass(frozen=True, slots=True)
class AppCall:
    """One `ask`/`stream` call as the plugin made it (`conversation_id`: the one continued)."""

    app: str
    query: str
    user: str
    conversation_key: str | None
    inputs: dict[str, Any] = field(default_factory=dict)
    files: tuple[Mapping[str, Any], ...] = ()
    conversation_id: str | None = None


class SimulatedApps:
    """The apps bound to a fake endpoint, each a Dify simulator: a `SimulatorConfig` is served in
    process (on `clock`, so its pacing takes no real time), a `RunningSimulator` over the network.

        apps = SimulatedApps({"support": SimulatorConfig(answer="Hello!")}, clock=clock)

    Like the gateway, a `conversation_key` continues the key's Dify conversation for the same
    user, and the query of a Workflow/Completion app goes into its text input (`query_input`).
    `calls` records every question asked. Close with `aclose()` (a `FakeContext` does).
    """

    def __init__(
        self,
        apps: Mapping[str, SimulatorConfig | RunningSimulator],
        *,
        clock: Clock,
        query_input: str | None = None,
    ) -> None:
        self._configs: dict[str, SimulatorConfig] = {}
        self._apps: dict[str, DifyApp] = {}
        mounts: dict[str, httpx.AsyncBaseTransport] = {}
        for name, spec in apps.items():
            if isinstance(spec, RunningSimulator):
                config, base_url = spec.config, spec.base_url
            else:
                config, base_url = spec, f"http://{name}.dify.test/v1"
                mounts[f"http://{name}.dify.test"] = httpx.ASGITransport(app=create_simulator_app(spec, clock=clock))
            self._configs[name] = config
            self._apps[name] = DifyApp(name, base_url, min(config.api_keys), config.mode)
        self._http = httpx.AsyncClient(mounts=mounts)
        self._dify = DifyClient(self._http, clock=clock)
        self._query_input = query_input
        self._conversations: dict[tuple[str, str, str], str] = {}
        self.calls: list[AppCall] = []

    @classmethod
    def answering(cls, answer: str, *, clock: Clock, name: str = "app") -> SimulatedApps:
        """One chat app that answers `answer` at once ("echo": "You said: <query>")."""
        config = SimulatorConfig(answer=answer, first_token_latency=0, tokens_per_second=0)
        return cls({name: config}, clock=clock)

    async def aclose(self) -> None:
        await self._http.aclose()

    def _info(self, name: str) -> AppInfo:
        config = self._configs[name]
        query_input = None
        if config.mode in INPUT_MODES:
            form = [InputField(variable, type_, required) for variable, type_, required in config.input_form]
            query_input = query_input_for(form, self._query_input)
        return AppInfo(name, config.mode, self._apps[name].base_url, query_input, bool(config.moderated_words))

    def _name(self, name: str | None) -> str:
        if name is None and self._apps:
            return next(iter(self._apps))
        if name is not None and name in self._apps:
            return name
        raise NotFound(f"no app {name!r} is bound to this endpoint" if name else "no app is bound to this endpoint")

    # -- the `Apps` protocol ----------------------------------------------------------------------

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._apps)

    def get(self, name: str | None = None) -> AppInfo:
        return self._info(self._name(name))

    async def describe(self, name: str | None = None) -> AppInfo:
        return self.get(name)

    @contextlib.asynccontextmanager
    async def stream(
        self,
        query: str,
        *,
        user: str,
        conversation_key: str | None = None,
        inputs: Mapping[str, Any] | None = None,
        files: Sequence[Mapping[str, Any]] = (),
        app: str | None = None,
        new_conversation: bool = False,
    ) -> AsyncIterator[AnswerStream]:
        info = self.get(app)
        fields = dict(inputs or {})
        if info.query_input is not None and query:
            fields[info.query_input] = query
        memory = (conversation_key, user, info.name) if conversation_key is not None else None
        known = self._conversations.get(memory) if memory and not new_conversation else None
        self.calls.append(AppCall(info.name, query, user, conversation_key, fields, tuple(files), known))
        request = AskRequest(
            user=user,
            query="" if info.query_input is not None else query,
            inputs=fields,
            files=tuple(files),
            conversation_id=known,
        )
        stream = self._dify.stream(self._apps[info.name], request)
        opened = False
        try:
            async with stream:
                opened = True
                yield stream
        finally:
            if memory is not None and opened and stream.conversation_id:
                self._conversations[memory] = stream.conversation_id

    async def ask(
        self,
        query: str,
        *,
        user: str,
        conversation_key: str | None = None,
        inputs: Mapping[str, Any] | None = None,
        files: Sequence[Mapping[str, Any]] = (),
        app: str | None = None,
        new_conversation: bool = False,
    ) -> Answer:
        async with self.stream(
            query,
            user=user,
            conversation_key=conversation_key,
            inputs=inputs,
            files=files,
            app=app,
            new_conversation=new_conversation,
        ) as stream:
            return await stream.collect()

    async def upload(
        self, content: bytes, *, name: str, mime_type: str, user: str, app: str | None = None
    ) -> UploadedFile:
        """Upload to the simulated app (no file-form checks: the simulator stores what it gets)."""
        info = self.get(app)
        body = await self._dify.upload(
            self._apps[info.name], user=user, name=name, content=content, mime_type=mime_type
        )
        size = body.get("size")
        return UploadedFile(
            id=str(body["id"]),
            name=name,
            size=size if isinstance(size, int) else len(content),
            mime_type=mime_type,
            type=file_type(name, mime_type) or "custom",
        )

    async def reset(self, conversation_key: str, *, user: str | None = None, app: str | None = None) -> None:
        names = {self._name(app)} if app else set(self._apps)
        for memory in list(self._conversations):
            key, who, name = memory
            if key == conversation_key and name in names and (user is None or who == user):
                del self._conversations[memory]
