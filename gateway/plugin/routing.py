"""Routing of the plugin contract: the `Plugin` a package registers, its routes, job handlers and
operator actions, and the handler types they take."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic

from pydantic import BaseModel
from typing_extensions import TypeVar

from gateway.plugin.context import Context, Permission
from gateway.plugin.jobs import JobInfo
from gateway.plugin.settings import secret_fields
from gateway.plugin.wire import Request, Response, Verdict

__all__ = [
    "ALL_METHODS",
    "Action",
    "ActionHandler",
    "ActionResult",
    "Handler",
    "JobHandler",
    "Plugin",
    "Route",
    "Verifier",
    "unverified",
]

ALL_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

# The plugin's settings model; `Plugin` (and each handler type) alone means `...[Any]`.
S = TypeVar("S", bound=BaseModel, default=Any)

Handler = Callable[[Request, Context[S]], Awaitable[Response]]
Verifier = Callable[[Request, Context[S]], Awaitable[Verdict]]
JobHandler = Callable[[JobInfo, Context[S]], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class ActionResult:
    """What an action found, for people and for programs.

    `text` is printed as is; `--json` prints `data` (or, when `events` is set, each event as one
    JSON object per line); `ok=False` is a failure: the CLI exits 1.
    """

    text: str
    data: Any
    ok: bool = True
    events: Sequence[Mapping[str, Any]] | None = None


ActionOutput = str | dict[str, Any] | ActionResult  # what an action handler returns
ActionHandler = Callable[[Context[S], Mapping[str, str]], Awaitable[ActionOutput]]


@dataclass(frozen=True, slots=True)
class Action(Generic[S]):
    """An operator action of a plugin (see `Plugin.action`)."""

    name: str
    handler: ActionHandler[S]
    help: str
    options: Mapping[str, str]
    flags: Mapping[str, str] = field(default_factory=dict)


async def unverified(request: Request, ctx: Context) -> Verdict:
    """The verifier of a plugin that deliberately checks nothing (it must say so explicitly)."""
    return Verdict.skipped()


_PARAM = re.compile(r"\{([a-zA-Z_][a-zA-Z0-9_]*)(:path)?\}")


def _compile(pattern: str) -> re.Pattern[str]:
    if not pattern.startswith("/"):
        raise ValueError(f"route pattern {pattern!r} must start with '/'")
    out, pos = [], 0
    for match in _PARAM.finditer(pattern):
        out.append(re.escape(pattern[pos : match.start()]))
        out.append(f"(?P<{match.group(1)}>.*)" if match.group(2) else f"(?P<{match.group(1)}>[^/]+)")
        pos = match.end()
    out.append(re.escape(pattern[pos:]))
    return re.compile("".join(out) + r"\Z")


@dataclass(frozen=True, slots=True)
class Route(Generic[S]):
    """A handler for some methods on a path pattern below the endpoint URL.

    Patterns use `{name}` for one segment and `{name:path}` for the rest of the path. With
    `verify=False` the plugin's verifier is not run (e.g. a route that checks its own bearer key).
    """

    pattern: str
    methods: frozenset[str]
    handler: Handler[S]
    verify: bool = True
    regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "regex", _compile(self.pattern))

    def match(self, path: str) -> dict[str, str] | None:
        found = self.regex.match(path)
        return None if found is None else found.groupdict()


# What the decorators keep of a handler: its awaitable, so a test awaits the handler's own result.
_Responds = TypeVar("_Responds", bound=Awaitable[Response])
_Runs = TypeVar("_Runs", bound=Awaitable[Any])
_Acts = TypeVar("_Acts", bound=Awaitable[ActionOutput])


class Plugin(Generic[S]):
    """An endpoint plugin: the value registered under the `dify_gateway.plugins` entry-point group.

    Typed by its settings model (`Plugin(..., settings=SlackSettings)` is a `Plugin[SlackSettings]`):
    its handlers take a `Context[SlackSettings]`, and a handler typed for another model is a type
    error where it is registered. The decorators return the handler as it was declared (its
    parameters positional), so tests call it with its own types.

    Args:
        name: the plugin's name (`--plugin NAME`).
        settings: pydantic model of the endpoint settings; `SecretStr` fields are secrets.
        verifier: checks every request (before the handler) unless a route opts out.
        permissions: what the context may reach.
        min_apps / max_apps: how many Dify apps an endpoint binds.
        generated: settings the gateway creates when not given: `factory() -> (shown once, stored)`.
        url_hint: a line shown with the endpoint URL, `{url}` replaced (e.g. "base URL: {url}/v1").
    """

    def __init__(
        self,
        name: str,
        *,
        settings: type[S],
        verifier: Verifier[S],
        permissions: Iterable[Permission] = (),
        description: str = "",
        min_apps: int = 0,
        max_apps: int | None = None,
        generated: Mapping[str, Callable[[], tuple[str, Any]]] | None = None,
        url_hint: str | None = None,
    ) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9_-]{0,39}", name):
            raise ValueError(f"plugin name {name!r} must be lower-case letters, digits, '-' or '_'")
        self.name = name
        self.settings_model = settings
        self.verifier = verifier
        self.permissions = frozenset(Permission(p) for p in permissions)
        self.description = description
        self.min_apps = min_apps
        self.max_apps = max_apps
        # Settings the gateway makes at creation when not given: factory() -> (shown once, stored).
        self.generated = dict(generated or {})
        self.actions: dict[str, Action[S]] = {}
        self.url_hint = url_hint
        self.routes: list[Route[S]] = []
        self.jobs: dict[str, JobHandler[S]] = {}
        # Payload fields of each job encrypted at rest (tokens, reply URLs), opened only to run it.
        self.job_secrets: dict[str, frozenset[str]] = {}

    def route(
        self, pattern: str, *, methods: Iterable[str] = ("POST",), verify: bool = True
    ) -> Callable[[Callable[[Request, Context[S]], _Responds]], Callable[[Request, Context[S]], _Responds]]:
        """Decorator: handle `methods` on `pattern`."""
        wanted = frozenset(m.upper() for m in methods)
        unknown = wanted - set(ALL_METHODS)
        if unknown:
            raise ValueError(f"unknown HTTP methods {sorted(unknown)}")

        def register(
            handler: Callable[[Request, Context[S]], _Responds],
        ) -> Callable[[Request, Context[S]], _Responds]:
            self.routes.append(Route(pattern, wanted, handler, verify))
            return handler

        return register

    def job(
        self, name: str, *, secrets: Collection[str] = ()
    ) -> Callable[[Callable[[JobInfo, Context[S]], _Runs]], Callable[[JobInfo, Context[S]], _Runs]]:
        """Decorator: the handler of jobs enqueued as `ctx.jobs.enqueue(name, ...)`.

        `secrets` names top-level payload fields holding credentials (an interaction token, a
        reply URL): they are stored encrypted, bound to the job, and decrypted only to run it.
        """
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
            raise ValueError(f"job name {name!r} must be letters, digits, '_', '.' or '-'")
        if isinstance(secrets, str):
            raise TypeError("secrets is a collection of field names, not one string")

        def register(handler: Callable[[JobInfo, Context[S]], _Runs]) -> Callable[[JobInfo, Context[S]], _Runs]:
            self.jobs[name] = handler
            self.job_secrets[name] = frozenset(secrets)
            return handler

        return register

    def action(
        self,
        name: str,
        *,
        help: str = "",
        options: Mapping[str, str] | None = None,
        flags: Mapping[str, str] | None = None,
    ) -> Callable[[Callable[[Context[S], Mapping[str, str]], _Acts]], Callable[[Context[S], Mapping[str, str]], _Acts]]:
        """Decorator: an operator action on one endpoint, e.g. printing a manifest or adding a key.

        It is run as `dify-gateway <plugin> <name> ENDPOINT [--option value ...] [--flag]` and as
        `POST /admin/api/endpoints/{id}/actions/{name}` with `{"args": {...}}`. `options` and
        `flags` map names to their help; a flag's argument is "true" when given ("false" or absent
        otherwise). The handler returns text (printed as is), a JSON object, or an `ActionResult`.
        """
        if not re.fullmatch(r"[a-z][a-z0-9-]{0,39}", name):
            raise ValueError(f"action name {name!r} must be lower-case letters, digits or '-'")

        def register(
            handler: Callable[[Context[S], Mapping[str, str]], _Acts],
        ) -> Callable[[Context[S], Mapping[str, str]], _Acts]:
            self.actions[name] = Action(name, handler, help, dict(options or {}), dict(flags or {}))
            return handler

        return register

    def match(self, method: str, path: str) -> tuple[Route[S] | None, dict[str, str], frozenset[str]]:
        """(route, path parameters, methods allowed on the path); the route is None when none takes `method`."""
        allowed: set[str] = set()
        for route in self.routes:
            params = route.match(path)
            if params is None:
                continue
            if method in route.methods or (method == "HEAD" and "GET" in route.methods):
                return route, params, frozenset()
            allowed |= route.methods
        return None, {}, frozenset(allowed)

    def secret_fields(self) -> frozenset[str]:
        """Names of settings typed as `SecretStr` (optional or not): encrypted at rest, masked on read."""
        return secret_fields(self.settings_model)

    def __repr__(self) -> str:
        return f"Plugin({self.name!r})"
