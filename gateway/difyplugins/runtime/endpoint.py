"""A Dify package as a gateway plugin named `author/name`: the endpoint adapter.

Its one route takes every path and method below the endpoint URL, so a request gets every edge
the gateway gives (body limit and read deadline, rate limit, request log) before it is matched
against the package's endpoint rules and sent to the plugin process as raw HTTP bytes
(`invoke_endpoint`). The plugin's answer is relayed as it comes: status and headers first, then
each body chunk as the plugin produces it (a generator body streams).

Failures: an exception in the plugin's code (which the SDK would answer with a 500 carrying the
exception text, or a 404 for a `ValueError`) becomes a 502 JSON error for the caller and a log line
for the operator; a plugin not running (crashed, restarting) is a 503 with `Retry-After`; no
answer within the request deadline is a 504.
"""

from __future__ import annotations

import asyncio
import binascii
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

from pydantic import BaseModel, SecretStr, create_model

from gateway.console.cookie import COOKIE as CONSOLE_COOKIE
from gateway.difyplugins.form import SettingsField
from gateway.difyplugins.manifest import Permissions
from gateway.difyplugins.runtime.connection import PluginConnection, PluginRaised, PluginSession
from gateway.difyplugins.runtime.rawhttp import raw_request
from gateway.difyplugins.runtime.reverse import ReverseCalls
from gateway.difyplugins.runtime.routes import EndpointRules
from gateway.difyplugins.runtime.spec import PluginSpec
from gateway.difyplugins.runtime.storage import InstallationStorage
from gateway.exceptions import NotFound, PluginFailed, UpstreamTimeout
from gateway.host.context import PluginContext
from gateway.plugin import ALL_METHODS, Clock, Context, Permission, Plugin, Request, Response, unverified

__all__ = ["DifyEndpointPlugin", "permissions_of", "settings_model"]

logger = logging.getLogger(__name__)

_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length", "upgrade", "trailer"})
# RFC 9110 field names (tokens) and values (visible Latin-1 and spaces: what HTTP/1.1 can carry).
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_FIELD_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")
_NO_BODY = frozenset({204, 304})  # statuses whose answers have no body (RFC 9110 §15.3.5, §15.4.5)
_SDK_ERROR_PREFIX = b"Internal Server Error: "  # the SDK's answer to an exception in `_invoke`
_SDK_NO_ROUTE = b"Failed to dispatch endpoint request"
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 field-name


def settings_model(key: str, form: Sequence[SettingsField]) -> type[BaseModel]:
    """The pydantic model of an endpoint's settings, from the package's settings form."""
    fields: dict[str, Any] = {}
    for field in form:
        kind: Any
        if field.type == "secret-input":
            kind = SecretStr
        elif field.type == "boolean":
            kind = bool
        elif field.type == "select":
            kind = Literal[tuple(field.options)]
        else:  # text-input; app-selector holds the name of one of the endpoint's bound apps
            kind = str
        if field.type == "app-selector":
            fields[field.name] = (kind | None, None)  # left out: the only bound app
        elif field.required and field.default is None:
            fields[field.name] = (kind, ...)
        else:
            default = SecretStr(str(field.default)) if field.secret and field.default is not None else field.default
            fields[field.name] = (kind | None, default)
    model: type[BaseModel] = create_model(f"Settings[{key}]", **fields)
    return model


def permissions_of(declared: Permissions) -> frozenset[Permission]:
    """The manifest's `resource.permission` as the gateway's permissions (one check for every plugin)."""
    out = set()
    if declared.allows("app"):
        out.add(Permission.APPS)
    if declared.allows("storage"):
        out.add(Permission.STORAGE)
    return frozenset(out)


def declared_kinds(declared: Permissions) -> frozenset[str]:
    """The manifest's permissions by Dify's names (`app`, `storage`, `llm`, `tool`, `node`, …)."""
    kinds = ("app", "storage", "tool", "node", "llm", "text_embedding", "rerank", "tts", "speech2text", "moderation")
    return frozenset(kind for kind in kinds if declared.allows(kind))


@dataclass(frozen=True, slots=True)
class _Head:
    status: int
    headers: list[tuple[str, str]]


class DifyEndpointPlugin(Plugin[Any]):
    """The gateway plugin of one installed Dify package (`author/name`)."""

    def __init__(
        self,
        spec: PluginSpec,
        *,
        connect: Callable[[str], Awaitable[PluginConnection]],
        storage: Callable[[str, int, str], InstallationStorage],
        request_timeout: float,
        forward: Callable[[Request], Awaitable[Response | None]] | None = None,
    ) -> None:
        # Gateway plugin names are single words; a Dify package is keyed by `author/name`, the key
        # its endpoints keep across upgrades (validated by the manifest's own rules).
        super().__init__(
            "dify-package",
            settings=settings_model(spec.key, spec.form),
            verifier=unverified,  # the package checks its own signatures, as inside Dify
            permissions=permissions_of(spec.permissions),
            description=spec.description,
        )
        self.name = spec.key
        self.spec = spec
        self.form = spec.form
        self._rules = EndpointRules(spec.endpoints)
        self._connect = connect
        self._storage = storage
        self._timeout = request_timeout
        # A plugin connected for remote debugging to another replica: the request goes there
        # (`forward` answers it) unless it is connected here (`forward` returns None).
        self._forward = forward
        self._declared = declared_kinds(spec.permissions)
        self.route("/{rest:path}", methods=ALL_METHODS, verify=False)(self._handle)

    @property
    def identity(self) -> str:
        return self.spec.identity

    def plugin_settings(self, ctx: PluginContext) -> dict[str, Any]:
        """The settings as the plugin reads them: secrets in clear, app-selectors as `{"app_id": NAME}`."""
        model = ctx.settings
        out: dict[str, Any] = {}
        for field in self.form:
            value = getattr(model, field.name, None)
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            if field.type == "app-selector":
                names = ctx.endpoint.apps
                if value is None and len(names) == 1:
                    value = names[0]
                value = {"app_id": value} if value is not None else None
            if value is not None:
                out[field.name] = value
        return out

    async def _handle(self, request: Request, ctx: Context[Any]) -> Response:
        self._rules.check(request.method, request.path)
        if self._forward is not None:
            forwarded = await self._forward(request)
            if forwarded is not None:
                return forwarded
        return await self.serve(request, ctx)

    async def serve(self, request: Request, ctx: Context[Any]) -> Response:
        """Answer `request` through this process's connection to the plugin (never forwarded)."""
        context = cast(PluginContext, ctx)
        self._rules.check(request.method, request.path)
        raw = raw_request(request)  # a request the SDK could not parse is refused before the plugin runs
        connection = await self._connect(self.name)
        storage = self._storage(self.name, self.spec.permissions.storage.size, context.workspace)
        reverse = ReverseCalls(
            ctx=context,
            storage=storage,
            declared=self._declared,
            user=f"endpoint-{request.endpoint_id}",
        )
        data = {
            "type": "endpoint",
            "action": "invoke_endpoint",
            "settings": self.plugin_settings(context),
            "raw_http_request": binascii.hexlify(raw).decode(),
        }
        started = ctx.clock.monotonic()
        session = await connection.open(data, reverse, endpoint_id=request.endpoint_id)
        chunks = aiter(session)
        try:
            async with asyncio.timeout(self._timeout):
                first = await anext(chunks, None)
            if first is None:
                raise PluginFailed(f"plugin {self.name} ended the request without an answer")
            head = _head(first)
            if "result" in first:  # not a generator: the whole body, in this one chunk
                body = _unhex(first.get("result"))
                self._judge(head, body, request)
                await session.aclose()
                return Response(head.status, b"" if head.status in _NO_BODY else body, head.headers)
            if head.status in _NO_BODY:  # a generator's body where HTTP has none: not read
                await session.aclose()
                return Response(head.status, b"", head.headers)
        except PluginRaised as exc:
            await session.aclose()
            self._log_failure(request, exc)
            raise PluginFailed(f"plugin {self.name} failed to answer") from None
        except TimeoutError:
            await session.aclose()
            raise UpstreamTimeout(f"plugin {self.name} did not answer within {self._timeout:g}s") from None
        except BaseException:
            await session.aclose()
            raise
        deadline = started + self._timeout
        return Response(head.status, self._relay(session, chunks, deadline, ctx.clock, request), head.headers)

    async def _relay(
        self,
        session: PluginSession,
        chunks: AsyncIterator[dict[str, Any]],
        deadline: float,
        clock: Clock,
        request: Request,
    ) -> AsyncIterator[bytes]:
        try:
            while True:
                # One timeout per chunk (never held across a `yield`), all ending at the deadline.
                async with asyncio.timeout(max(0.0, deadline - clock.monotonic())):
                    chunk = await anext(chunks, None)
                if chunk is None:
                    return
                body = _unhex(chunk.get("result"))
                if body:
                    yield body
        except PluginRaised as exc:
            self._log_failure(request, exc)  # mid-stream: the caller sees the stream end
        except TimeoutError:
            logger.error("plugin %s: a streamed answer passed the %gs deadline; cut", self.name, self._timeout)
        finally:
            await session.aclose()

    def _judge(self, head: _Head, body: bytes, request: Request) -> None:
        """Refuse the SDK's answer to an exception (500 + its text): the text never reaches the caller.

        (The SDK answers a `ValueError` with a 404 carrying its text, indistinguishable from a
        plugin's own 404: that one is relayed.)"""
        if head.status == 500 and body.startswith(_SDK_ERROR_PREFIX):
            text = body[len(_SDK_ERROR_PREFIX) :].decode(errors="replace")
            self._log_failure(request, PluginRaised("Exception", text))
            raise PluginFailed(f"plugin {self.name} failed to answer")
        if head.status == 404 and body.startswith(_SDK_NO_ROUTE):
            raise NotFound(f"this endpoint has no route {request.path}")

    def _log_failure(self, request: Request, exc: PluginRaised) -> None:
        logging.getLogger(f"gateway.plugins.{self.name}").error(
            "endpoint %s: %s %s raised %s: %s%s",
            request.endpoint_id,
            request.method,
            request.path,
            exc.kind,
            exc.message,
            f"\n{exc.traceback.rstrip()}" if exc.traceback else "",
        )


def _head(chunk: Mapping[str, Any]) -> _Head:
    status = chunk.get("status")
    # A final status only: an interim one (1xx) can't be the answer, and h11 refuses to write it.
    if not isinstance(status, int) or isinstance(status, bool) or not 200 <= status <= 599:
        raise PluginRaised("ProtocolError", f"the answer's status {status!r} is not a final HTTP status")
    headers: list[tuple[str, str]] = []
    raw = chunk.get("headers") or {}
    items: Iterable[tuple[Any, Any]] = raw.items() if isinstance(raw, dict) else raw if isinstance(raw, list) else ()
    for name, value in items:
        if not isinstance(name, str) or not _TOKEN.fullmatch(name) or name.lower() in _HOP_BY_HOP:
            continue  # a name that is not an HTTP token (werkzeug takes any text) can't go out
        # A list of values: one header line each (repeated headers survive the relay).
        for one in value if isinstance(value, list) else [value]:
            text = _latin1(str(one))
            if not _FIELD_VALUE.fullmatch(text) or (name.lower() == "set-cookie" and _sets_console_cookie(text)):
                continue  # a header uvicorn can't write, or the operator console's session
            headers.append((name, text))
    return _Head(status, headers)


def _latin1(text: str) -> str:
    """A header value as the gateway writes it (latin-1): one outside latin-1 goes out as its UTF-8
    bytes, as Dify's daemon writes it (werkzeug lets a plugin set any text)."""
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8").decode("latin-1")
    return text


def _sets_console_cookie(value: str) -> bool:
    return value.partition("=")[0].strip().lower() == CONSOLE_COOKIE.lower()


def _unhex(value: Any) -> bytes:
    if not value:
        return b""
    try:
        return binascii.unhexlify(value)
    except (binascii.Error, TypeError):
        raise PluginRaised("ProtocolError", "a body chunk is not hex") from None
