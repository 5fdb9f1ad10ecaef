"""Upstreams a workspace admin chose: Dify apps' base URLs and plugins' API base URLs (security.md §6).

The operator may point the gateway anywhere, a Dify on a private network included. A workspace
token may not: the URLs it sets must resolve to public addresses, or to hosts and networks the
operator allows for everyone (`GATEWAY_PRIVATE_UPSTREAMS`). Otherwise a workspace admin could make
the gateway fetch its cloud metadata or an internal service, and `POST /apps/{name}/check` would
hand back the answer.

`UpstreamGuard.check` runs when such a URL is written; `UpstreamGuard.http` is the client every
connection to it goes through, the SSRF guard's pinned transport (gateway/security/ssrf.py): the
addresses checked are the ones connected to, so DNS rebinding can't slip in between. Records
keep whether a workspace token set their URL (`guarded`); only those use this client, the
operator's stay on the shared one. A refusal at connect time is an `httpx.ConnectError`, which
callers already treat as an unreachable upstream. `aiohttp_connector` does the same for SDKs that
bring their own aiohttp session (Slack's Web API client; gateway/security/aiohttpguard.py).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from ipaddress import IPv4Network, IPv6Network

import aiohttp
import httpcore
import httpx

from gateway.exceptions import BadRequest
from gateway.security.aiohttpguard import guarded_connector
from gateway.security.ssrf import NON_PUBLIC, PinnedTransport, Resolver, UrlPolicy, check_url_syntax, resolve_and_check

__all__ = ["UpstreamGuard", "is_http_url", "upstream_policy"]

SETTING = "GATEWAY_PRIVATE_UPSTREAMS"


def is_http_url(value: object) -> bool:
    """Whether `value` is a string naming an http(s) URL: a setting the upstream guard checks."""
    return isinstance(value, str) and value.strip().lower().startswith(("http://", "https://"))


def upstream_policy(private_upstreams: Iterable[str]) -> UrlPolicy:
    """The policy for workspace-set upstreams: http or https, public addresses, plus the operator's
    `private_upstreams` (host names, IP addresses or CIDR networks such as `10.0.0.0/8`)."""
    hosts: list[str] = []
    networks: list[IPv4Network | IPv6Network] = []
    for entry in (e.strip() for e in private_upstreams):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry.removeprefix("[").removesuffix("]"), strict=False))
        except ValueError:
            hosts.append(entry)
    return UrlPolicy(allow_http=True, allowed_hosts=frozenset(hosts), allowed_networks=tuple(networks))


class _RefusalIsConnectError(httpx.AsyncBaseTransport):
    """The pinned transport, with its refusals (BadRequest) turned into `httpx.ConnectError`."""

    def __init__(self, inner: PinnedTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await self._inner.handle_async_request(request)
        except BadRequest as exc:  # the host (never the URL, which may carry secrets) is in the message
            host = request.url.host
            raise httpx.ConnectError(f"{host}: {exc.message}; see {SETTING}", request=request) from None

    async def aclose(self) -> None:
        await self._inner.aclose()


class UpstreamGuard:
    """Checks workspace-set upstream URLs, and connects to them only through the SSRF guard.

    `resolver` and `network_backend` exist for tests (see `gateway.security.ssrf.PinnedTransport`).
    """

    def __init__(
        self,
        policy: UrlPolicy,
        *,
        timeout: httpx.Timeout,
        resolver: Resolver | None = None,
        network_backend: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self.policy = policy
        self._resolver = resolver
        transport = _RefusalIsConnectError(PinnedTransport(policy, resolver=resolver, network_backend=network_backend))
        self.http = httpx.AsyncClient(transport=transport, follow_redirects=False, trust_env=False, timeout=timeout)

    async def check(self, url: str, what: str) -> None:
        """BadRequest unless `url` (named `what` in the message) may be set by a workspace token."""
        try:
            parsed = check_url_syntax(url, self.policy)
            if not self.policy.allows_host(parsed.host):  # allowed hosts are resolved when connecting
                await resolve_and_check(parsed.host, parsed.port, self.policy, resolver=self._resolver)
        except BadRequest as exc:
            if exc.message == NON_PUBLIC:
                raise BadRequest(
                    f"{what} resolves to a non-public address: only the operator can set one "
                    f"(or allow it for every workspace with {SETTING})",
                    host=exc.context.get("host"),
                ) from None
            raise BadRequest(f"{what}: {exc.message.replace('callback ', '')}", **exc.context) from None

    def aiohttp_connector(self) -> aiohttp.TCPConnector:
        """A new aiohttp connector with the same checks as `http`, at connect time, for SDKs that
        bring their own aiohttp session (slack_sdk); the session using it closes it."""
        return guarded_connector(self.policy, resolver=self._resolver, hint=f"; see {SETTING}")

    async def aclose(self) -> None:
        await self.http.aclose()
