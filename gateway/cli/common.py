"""What every command shares: settings from the environment, a Gateway (or a service host) for the
command's duration, output. Command plugins (`dify_gateway.commands` entry points) use it too."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import Any, NoReturn, TypeVar

import click
import httpx

from gateway.exceptions import GatewayError
from gateway.host.runtime import Gateway, open_gateway
from gateway.host.services import Host
from gateway.settings import Settings, bootstrap

__all__ = ["emit", "fail", "iso_time", "iso_times", "load_settings", "run", "service_host", "table"]

T = TypeVar("T")


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment, with `overrides` (command-line options) on top."""
    try:
        boot = bootstrap(Settings.from_env(os.environ).with_changes(**overrides))
    except GatewayError as exc:
        fail(exc.message)
    if boot.generated_admin_token:
        click.echo(f"Generated an admin token (shown once, keep it): {boot.generated_admin_token}", err=True)
    return boot.settings


def run(action: Callable[[Gateway], Awaitable[T]], settings: Settings | None = None) -> T:
    """Open a Gateway on the configured store, run `action`, close it; errors become a clean exit 1."""

    async def main() -> T:
        gateway = await open_gateway(settings or load_settings())
        try:
            return await action(gateway)
        finally:
            await gateway.aclose()

    try:
        return asyncio.run(main())
    except GatewayError as exc:
        fail(exc.message)
    except httpx.HTTPError as exc:
        # e.g. an action calling the gateway's own URL while no gateway listens there
        # Only scheme and host: an endpoint URL's path is a secret token.
        target = f"{exc.request.url.scheme}://{exc.request.url.netloc.decode()}" if _has_request(exc) else "the network"
        fail(f"could not reach {target}: {exc.__class__.__name__}")


@contextlib.asynccontextmanager
async def service_host(settings: Settings) -> AsyncIterator[Host]:
    """The host of a service that a command runs on its own (`dify-gateway bot discord`), rather
    than `serve` beside the workers; the gateway behind it is closed on the way out."""
    gateway = await open_gateway(settings)
    try:
        yield gateway.host
    finally:
        await gateway.aclose()


def _has_request(exc: httpx.HTTPError) -> bool:
    try:
        exc.request  # noqa: B018 - raises RuntimeError when the error carries no request
    except RuntimeError:
        return False
    return True


def iso_time(timestamp: float) -> str:
    """A Unix time as ISO 8601 in UTC, to the second: `2026-01-31T09:30:00Z`."""
    moment = datetime.datetime.fromtimestamp(timestamp, datetime.UTC)
    return moment.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def iso_times(data: dict[str, Any], *fields: str) -> dict[str, Any]:
    """`data` with the Unix times in `fields` (numbers, or lists of them) as ISO 8601 strings."""
    out = dict(data)
    for name in fields:
        value = out.get(name)
        if isinstance(value, list):
            out[name] = [iso_time(v) for v in value]
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[name] = iso_time(value)
    return out


def fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


def emit(data: Any, as_json: bool, human: Callable[[Any], str] | None = None) -> None:
    if as_json or human is None:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        click.echo(human(data))


def table(rows: Iterable[Sequence[object]], headers: Sequence[str]) -> str:
    cells = [[str(c) for c in headers], *[[("" if c is None else str(c)) for c in row] for row in rows]]
    if len(cells) == 1:
        return "(none)"
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells)


def key_values(pairs: Iterable[str], option: str) -> list[tuple[str, str]]:
    out = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            fail(f"{option} takes key=value, got {pair!r}")
        out.append((key.strip(), value))
    return out
