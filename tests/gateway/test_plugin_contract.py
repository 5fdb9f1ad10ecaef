"""The plugin contract's own rules."""

from __future__ import annotations

from collections.abc import Mapping
from typing import assert_type

import pytest
from pydantic import BaseModel

from gateway.plugin import Context, JobInfo, Plugin, Request, Response, Verdict, unverified
from gateway.testing import FakeContext, make_request

pytestmark = pytest.mark.anyio


class Empty(BaseModel):
    pass


@pytest.mark.parametrize("name", ["answer", "send.callback", "step-2", "A_1"])
def test_job_names_that_fit_a_job_key(name: str) -> None:
    plugin = Plugin("p", settings=Empty, verifier=unverified)

    @plugin.job(name)
    async def handler(job: object, ctx: object) -> None: ...

    assert name in plugin.jobs


@pytest.mark.parametrize("name", ["", "a:b", "with space", "x" * 65])
def test_job_names_that_would_break_the_job_key_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="job name"):
        Plugin("p", settings=Empty, verifier=unverified).job(name)


# -- Plugin[S] / Context[S]: typed by the settings model ----------------------------------------------


class Greeting(BaseModel):
    greeting: str = "hello"


class Other(BaseModel):
    token: str = ""


async def test_handlers_see_the_plugins_settings_model_and_keep_their_own_types() -> None:
    plugin = Plugin("typed", settings=Greeting, verifier=unverified)
    assert_type(plugin, Plugin[Greeting])

    @plugin.route("/hello", methods=["GET"])
    async def hello(request: Request, ctx: Context[Greeting]) -> Response:
        return Response.text(ctx.settings.greeting)

    @plugin.job("greet")
    async def greet(job: JobInfo, ctx: Context[Greeting]) -> dict[str, str]:
        return {"said": ctx.settings.greeting}

    @plugin.action("shout")
    async def shout(ctx: Context[Greeting], args: Mapping[str, str]) -> str:
        return ctx.settings.greeting.upper() + args.get("end", "")

    async with FakeContext(plugin, {"greeting": "bonjour"}) as ctx:
        assert_type(ctx.settings, Greeting)
        said = await greet(JobInfo("job_1", "greet", {}, 1, None), ctx)
        assert_type(said, dict[str, str])  # not Any: the decorator returned the handler as declared
        assert said == {"said": "bonjour"}
        shouted = await shout(ctx, {"end": "!"})
        assert_type(shouted, str)
        assert shouted == "BONJOUR!"
        response = await ctx.dispatch(make_request("GET", "/hello"))
        assert response.body == b"bonjour"
    assert plugin.jobs["greet"] is greet and plugin.actions["shout"].handler is shout


def test_a_handler_typed_for_another_settings_model_is_a_type_error() -> None:
    """mypy is the guard (Python registers anything): each `type: ignore` below is needed, or
    strict mypy reports it as unused."""

    async def verify_other(request: Request, ctx: Context[Other]) -> Verdict:
        return Verdict.ok()

    wrong_verifier = Plugin("typed", settings=Greeting, verifier=verify_other)  # type: ignore[arg-type]
    plugin = Plugin("typed", settings=Greeting, verifier=unverified)

    @plugin.job("other")  # type: ignore[arg-type]
    async def other(job: JobInfo, ctx: Context[Other]) -> str:
        return ctx.settings.token

    @plugin.route("/other")  # type: ignore[arg-type]
    async def other_route(request: Request, ctx: Context[Other]) -> Response:
        return Response.text(ctx.settings.token)

    # A handler that takes any context fits every plugin.
    @plugin.job("any")
    async def any_settings(job: JobInfo, ctx: Context) -> None: ...

    assert wrong_verifier.settings_model is Greeting
    assert set(plugin.jobs) == {"other", "any"} and len(plugin.routes) == 1


def test_headers_from_asgi_keep_arrival_order_and_the_first_of_repeated_names() -> None:
    from gateway.plugin import Headers

    raw = [(b"x-b", b"1"), (b"X-A", b"caf\xe9"), (b"x-b", b"2"), (b"x-c", b"3")]
    headers = Headers.from_asgi(raw)
    assert list(headers) == ["x-b", "x-a", "x-c"]
    assert headers["x-b"] == "1" and headers.getall("x-b") == ["1", "2"]
    assert headers.get("x-a") == "café" and headers.get_bytes("X-A") == b"caf\xe9"
    assert headers.raw == (("x-b", "1"), ("x-a", "café"), ("x-b", "2"), ("x-c", "3"))
    single = Headers.from_asgi([(b"content-type", b"application/json"), (b"x-slack-signature", b"v0=ab")])
    assert dict(single) == {"content-type": "application/json", "x-slack-signature": "v0=ab"}
