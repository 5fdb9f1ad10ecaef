"""Dify plugin packages in the admin API: install, upgrade, verify and remove, with the package bytes
as the request body. The rows they answer with are in `gateway.admin.pluginrows`."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from starlette.requests import Request

from gateway.admin.pluginrows import installation_out
from gateway.admin.principal import caller
from gateway.difyplugins.package import PackageLimits
from gateway.exceptions import BadRequest
from gateway.host.runtime import Gateway
from gateway.http.middleware import BODY_LIMITS, BodyLimits

__all__ = ["install", "read_package_body", "remove", "show", "upgrade", "verify"]

UPLOAD_SECONDS = 120.0  # a package may be tens of MiB: more time than a webhook body gets


def _flag(request: Request, name: str) -> bool:
    raw = request.query_params.get(name, "false").strip().lower()
    if raw not in ("true", "false", "1", "0", "yes", "no"):
        raise BadRequest(f"{name} must be true or false")
    return raw in ("true", "1", "yes")


async def read_package_body(request: Request) -> bytes:
    """The request body as a package: up to the package size limit, with time to arrive."""
    limits: BodyLimits | None = request.scope.get(BODY_LIMITS)
    if limits is not None:
        limits.max_bytes = max(limits.max_bytes, PackageLimits().max_package_bytes)
        limits.deadline += UPLOAD_SECONDS  # on top of the usual body deadline (the event loop's clock)
    data = await request.body()
    if not data:
        raise BadRequest("send the package file (.difypkg) as the request body")
    return data


def _key(request: Request) -> str:
    return f"{request.path_params['author']}/{request.path_params['name']}"


async def install(request: Request, gw: Gateway, _: None) -> Any:
    data = await read_package_body(request)
    installation = await gw.dify_plugins.install(data, allow_unsigned=_flag(request, "allow_unsigned"))
    return installation_out(installation, gw.dify_plugins.runtime_state(installation))


async def show(request: Request, gw: Gateway, _: None) -> Any:
    installation = await gw.dify_plugins.get(_key(request))
    paths = caller(request).principal.operator
    return installation_out(installation, gw.dify_plugins.runtime_state(installation), paths=paths)


async def upgrade(request: Request, gw: Gateway, _: None) -> Any:
    data = await read_package_body(request)
    verification = await anyio.to_thread.run_sync(gw.dify_plugins.verify, data)
    if verification.identity is not None and not verification.identity.startswith(_key(request) + ":"):
        raise BadRequest(f"the package is {verification.identity.partition(':')[0]}, not {_key(request)}")
    installation = await gw.dify_plugins.upgrade(data, allow_unsigned=_flag(request, "allow_unsigned"))
    return installation_out(installation, gw.dify_plugins.runtime_state(installation))


async def remove(request: Request, gw: Gateway, _: None) -> Any:
    installation, disabled = await gw.dify_plugins.remove(
        _key(request), disable_endpoints=_flag(request, "disable_endpoints")
    )
    return {"deleted": installation.key, "disabled_endpoints": disabled}


async def verify(request: Request, gw: Gateway, _: None) -> Any:
    data = await read_package_body(request)
    return (await anyio.to_thread.run_sync(gw.dify_plugins.verify, data)).to_dict()
