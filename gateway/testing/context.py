"""`FakeContext`: the plugin `Context` for tests, every part in memory and inspectable."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Generic

import aiohttp
import httpx
from pydantic import BaseModel
from typing_extensions import TypeVar

from gateway.clock import Clock
from gateway.plugin import EndpointInfo, Memory, Permission, PermissionDenied, Plugin, Request, Response
from gateway.plugin.settings import current_secret
from gateway.security.ssrf import UrlPolicy
from gateway.simulator.config import SimulatorConfig
from gateway.testing.apps import SimulatedApps
from gateway.testing.callbacks import RecordedCallbacks
from gateway.testing.clock import VirtualClock
from gateway.testing.jobs import FakeJobs
from gateway.testing.requests import ENDPOINT_ID, ENDPOINT_URL, dispatch
from gateway.testing.simulator import RunningSimulator
from gateway.testing.storage import MemoryStorage

__all__ = ["FakeContext"]

SettingsT = TypeVar("SettingsT", bound=BaseModel, default=Any)


def _no_network(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError(
        f"{request.method} {request.url.host}: this FakeContext has no network; pass "
        "http=httpx.AsyncClient(transport=...) (e.g. a fake platform's app)",
        request=request,
    )


class FakeContext(Generic[SettingsT]):
    """A plugin's `Context` without a gateway, enforcing the plugin's permissions like the real one.
    Typed like the plugin: `FakeContext(plugin)` of a `Plugin[S]` is a `Context[S]`.

        ctx = FakeContext(plugin, {"secret": "..."}, answer="Hello!")
        response = await ctx.dispatch(signed.request("/"))
        assert ctx.jobs.enqueued[0].name == "answer"
        await ctx.jobs.run_all()

    Args:
        plugin: the plugin under test.
        settings: the endpoint's settings (validated by the plugin's model), or a model instance.
        answer: what the one app ("app") answers, through the Dify simulator ("echo": "You said: …").
        apps: instead, the bound apps by name: a `SimulatorConfig` each (served in process) or a
            `RunningSimulator` (see the `dify_simulator` fixture).
        http: the client `ctx.http` is; by default one that refuses every request.
        clock: by default a `VirtualClock` (sleeps take no real time).
        previous_secrets: values of secret settings still in a rotation's grace (`ctx.secrets`).

    Parts to inspect: `storage` (`MemoryStorage`: `data`), `jobs` (`FakeJobs`: `enqueued`,
    `run_all()`), `apps` (`SimulatedApps`: `calls`), `callbacks` (`RecordedCallbacks`: `sent`).
    Close it (`async with FakeContext(...)` or `await ctx.aclose()`) when it used apps.
    """

    def __init__(
        self,
        plugin: Plugin[SettingsT],
        settings: Mapping[str, Any] | SettingsT | None = None,
        *,
        answer: str = "echo",
        apps: Mapping[str, SimulatorConfig | RunningSimulator] | None = None,
        http: httpx.AsyncClient | None = None,
        clock: Clock | None = None,
        endpoint_id: str = ENDPOINT_ID,
        endpoint_url: str = ENDPOINT_URL,
        callback_policy: UrlPolicy | None = None,
        previous_secrets: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.plugin = plugin
        self.previous_secrets = {name: tuple(values) for name, values in (previous_secrets or {}).items()}
        self._clock: Clock = clock or VirtualClock()
        model = plugin.settings_model
        self._settings: SettingsT = settings if isinstance(settings, model) else model.model_validate(settings or {})
        specs = (
            apps
            if apps is not None
            else {"app": SimulatorConfig(answer=answer, first_token_latency=0, tokens_per_second=0)}
        )
        query_input = getattr(self._settings, "query_input", None)
        self._apps = SimulatedApps(specs, clock=self._clock, query_input=query_input)
        self._endpoint = EndpointInfo(endpoint_id, plugin.name, endpoint_url, self._apps.names)
        self._storage = MemoryStorage(self._clock)
        self._jobs = FakeJobs(plugin, self._clock, lambda: self)
        self._callbacks = RecordedCallbacks(self._clock, callback_policy)
        self._memory = Memory(self._clock)
        self._http = http or httpx.AsyncClient(transport=httpx.MockTransport(_no_network))
        self._logger = logging.LoggerAdapter(
            logging.getLogger(f"gateway.plugins.{plugin.name}"), {"endpoint_id": endpoint_id}
        )

    async def __aenter__(self) -> FakeContext[SettingsT]:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the apps' client (not a given `http`: its owner closes it)."""
        await self._apps.aclose()

    async def dispatch(self, request: Request) -> Response:
        """`request` routed through the plugin like the gateway does (see `gateway.testing.dispatch`)."""
        return await dispatch(self.plugin, self, request)

    def _require(self, permission: Permission) -> None:
        if permission not in self.plugin.permissions:
            raise PermissionDenied(
                f"plugin {self.plugin.name!r} did not declare the {permission.value!r} permission",
                endpoint_id=self._endpoint.id,
            )

    # -- the `Context` protocol ---------------------------------------------------------------------

    @property
    def endpoint(self) -> EndpointInfo:
        return self._endpoint

    @property
    def settings(self) -> SettingsT:
        return self._settings

    @property
    def apps(self) -> SimulatedApps:
        self._require(Permission.APPS)
        return self._apps

    @property
    def storage(self) -> MemoryStorage:
        self._require(Permission.STORAGE)
        return self._storage

    @property
    def jobs(self) -> FakeJobs:
        self._require(Permission.JOBS)
        return self._jobs

    @property
    def http(self) -> httpx.AsyncClient:
        self._require(Permission.HTTP)
        return self._http

    def aiohttp_connector(self) -> aiohttp.BaseConnector:
        self._require(Permission.HTTP)
        return aiohttp.TCPConnector()

    @property
    def callbacks(self) -> RecordedCallbacks:
        self._require(Permission.HTTP)
        return self._callbacks

    @property
    def logger(self) -> logging.LoggerAdapter[logging.Logger]:
        return self._logger

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def memory(self) -> Memory:
        return self._memory

    def secrets(self, setting: str) -> tuple[str, ...]:
        return (*current_secret(self._settings, setting), *self.previous_secrets.get(setting, ()))
