"""`guarded_connector`: the SSRF guard's connect-time check for SDKs that bring their own aiohttp
session (slack_sdk's `AsyncWebClient`), where `PinnedTransport` (an httpx transport) can't go.

Two hooks of `aiohttp.TCPConnector`, both public:

- the resolver resolves a host name through `resolve_and_check` (the same rules, the same
  resolver as `UpstreamGuard`), and the connector connects to the addresses it returned, never
  resolving again (no DNS rebinding between check and connect);
- the socket factory sees every address a connection is about to be made to, IP literals
  included (aiohttp doesn't send those to the resolver), and refuses one that is neither allowed
  by the policy nor returned by the resolver for a checked host.

A refusal is an `OSError` at connect time, so aiohttp raises `ClientConnectorError` (naming the
host, never the URL): to callers, an unreachable upstream. TLS verification stays on.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from gateway.exceptions import BadRequest
from gateway.security.ssrf import Resolver, UrlPolicy, resolve_and_check

__all__ = ["CheckedResolver", "guarded_connector"]


class CheckedResolver(AbstractResolver):
    """Resolves a host name for aiohttp with `resolve_and_check`: only checked addresses, or
    `BadRequest` (non-public address, or the name could not be resolved). Remembers the
    addresses it let through (`checked`), for a socket factory that sees every connection."""

    def __init__(self, policy: UrlPolicy, resolver: Resolver | None = None) -> None:
        self._policy = policy
        self._resolver = resolver
        self.checked: set[str] = set()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = await resolve_and_check(host, port, self._policy, resolver=self._resolver)
        self.checked.update(addresses)
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in addresses
        ]

    async def close(self) -> None:
        return None


class _RefusingResolver(CheckedResolver):
    """A `CheckedResolver` whose refusals are `OSError`s, which aiohttp turns into a connect error."""

    def __init__(self, policy: UrlPolicy, resolver: Resolver | None, hint: str) -> None:
        super().__init__(policy, resolver)
        self._hint = hint

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        try:
            return await super().resolve(host, port, family)
        except BadRequest as exc:  # the host (never the URL, which may carry secrets) is in the message
            raise OSError(errno.EACCES, f"{host}: {exc.message}{self._hint}") from None


def guarded_connector(policy: UrlPolicy, *, resolver: Resolver | None = None, hint: str = "") -> aiohttp.TCPConnector:
    """A new aiohttp connector whose every connection passes `policy` at connect time.

    `resolver` exists for tests (see `gateway.security.ssrf.PinnedTransport`); `hint` is added to
    refusals (e.g. the setting that allows more). The session using it owns and closes it.
    """
    checked = _RefusingResolver(policy, resolver, hint)

    def socket_factory(info: tuple[Any, ...]) -> socket.socket:
        family, kind, proto, _, address = info
        ip = ipaddress.ip_address(address[0])
        if not (policy.allows_address(ip) or str(ip) in checked.checked):
            raise OSError(errno.EACCES, f"{ip} is not a public address{hint}")
        return socket.socket(family, kind, proto)

    return aiohttp.TCPConnector(resolver=checked, socket_factory=socket_factory, use_dns_cache=False)
