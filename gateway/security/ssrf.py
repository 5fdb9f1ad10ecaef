"""Outbound URL safety (SSRF) for callback URLs and any other user-supplied destination.

Rules from security.md §6, in three layers:

1. `check_url_syntax`: https only (http when the policy allows it), no user info, a plain host
   name or IP literal, a valid (optionally allow-listed) port, at most 2048 chars. Run it when a
   URL is registered; `PinnedTransport` runs it again on every request, redirects included.
2. `resolve_and_check`: resolve A and AAAA and require every address to be public
   (`is_public_address`). The check is on resolved addresses, never on the string: getaddrinfo
   reads "2130706433", "0x7f000001", "0177.0.0.1" and "127.1" as 127.0.0.1, which `ipaddress`
   would not even parse.
3. `PinnedTransport`: an httpx transport whose network backend runs (2) inside `connect_tcp` and
   connects to the checked addresses, never resolving again, so DNS rebinding can't slip in
   between check and connect. The request URL keeps the host name, so the Host header, TLS SNI
   and certificate checks all use it, and the connection pool is keyed by host name. (Rewriting
   the URL to the IP would pool by IP and could reuse a TLS connection verified for another
   host.) Every new connection is checked; a keep-alive connection was checked when opened.
   This is the design of Svix's `NonLocalDnsResolver`.

Redirects are never followed (3xx is a failure), and TLS verification can't be turned off.
Error messages name at most the host, never the full URL (its query may carry secrets).
"""

from __future__ import annotations

import re
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

import anyio
import httpcore
import httpx

from gateway.exceptions import BadRequest
from gateway.security.addresses import _ip_literal, _normalise_host, is_public_address

__all__ = [
    "MAX_URL_CHARS",
    "ParsedUrl",
    "PinnedTransport",
    "Resolver",
    "UrlPolicy",
    "check_url_syntax",
    "is_public_address",
    "resolve_and_check",
    "system_resolver",
]

Resolver = Callable[[str, int], Awaitable[list[str]]]

MAX_URL_CHARS = 2048
MAX_HOST_CHARS = 253
NON_PUBLIC = "callback host resolves to a non-public address"
DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)
_HOSTNAME = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*\.?")  # after IDNA encoding and lowercasing


@dataclass(frozen=True, slots=True)
class UrlPolicy:
    """What outbound URLs may look like. `allowed_hosts` bypass the address checks, and addresses in
    `allowed_networks` pass them (both the operator's choice)."""

    allow_http: bool = False
    allowed_hosts: frozenset[str] = frozenset()
    allowed_ports: frozenset[int] | None = None
    allowed_networks: tuple[IPv4Network | IPv6Network, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "allowed_hosts", frozenset(_normalise_host(host) for host in self.allowed_hosts))

    def allows_host(self, host: str) -> bool:
        """True if `host` is on the operator's allow-list."""
        return _normalise_host(host) in self.allowed_hosts

    def allows_address(self, ip: IPv4Address | IPv6Address) -> bool:
        """True if `ip` is public or in one of the operator's allowed networks."""
        return is_public_address(ip) or any(ip in net for net in self.allowed_networks)


@dataclass(frozen=True, slots=True)
class ParsedUrl:
    """A URL that passed `check_url_syntax`."""

    scheme: str
    host: str  # lowercase ASCII (IDNA) host name, or an IP literal without brackets
    port: int  # explicit, or the scheme's default
    target: str = field(repr=False)  # path and query; may carry secrets, so kept out of repr

    @property
    def origin(self) -> str:
        """`scheme://host:port`, safe to show and log."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def check_url_syntax(url: str, policy: UrlPolicy) -> ParsedUrl:
    """Validate a callback URL's form (not its addresses); BadRequest with a clear reason otherwise."""
    if not isinstance(url, str) or not url:
        raise BadRequest("callback URL is empty")
    if len(url) > MAX_URL_CHARS:
        raise BadRequest(f"callback URL is longer than {MAX_URL_CHARS} characters")
    if any(char <= " " or char == "\x7f" for char in url):
        raise BadRequest("callback URL contains spaces or control characters")
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        raise BadRequest("callback URL is not a valid URL") from None
    scheme = parsed.scheme.lower()
    if scheme != "https" and not (scheme == "http" and policy.allow_http):
        raise BadRequest("callback URL must use " + ("http or https" if policy.allow_http else "https"))
    if parsed.userinfo:
        raise BadRequest("callback URL must not contain a user name or password")
    host = parsed.raw_host.decode("ascii").lower()
    if not host:
        raise BadRequest("callback URL has no host")
    literal = _ip_literal(host)
    if literal is None and (len(host) > MAX_HOST_CHARS or _HOSTNAME.fullmatch(host) is None):
        raise BadRequest("callback URL host is not a valid host name")
    port = parsed.port if parsed.port is not None else (443 if scheme == "https" else 80)
    if not 1 <= port <= 65535:
        raise BadRequest("callback URL port is not valid")
    if policy.allowed_ports is not None and port not in policy.allowed_ports:
        raise BadRequest(f"callback URL port {port} is not allowed")
    return ParsedUrl(scheme, host if literal is None else str(literal), port, parsed.raw_path.decode("ascii"))


async def system_resolver(host: str, port: int) -> list[str]:
    """A and AAAA addresses of `host` from the system resolver (getaddrinfo, in a worker thread)."""
    try:
        infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):  # socket.gaierror; IDNA errors on odd names
        raise BadRequest("callback host could not be resolved", host=host) from None
    return [str(info[4][0]) for info in infos]


async def resolve_and_check(host: str, port: int, policy: UrlPolicy, *, resolver: Resolver | None = None) -> list[str]:
    """Resolve `host` and return its addresses, deduplicated, if every one of them is public.

    Hosts on the policy's allow-list skip the address checks but are still resolved (the caller
    connects to what is returned). IP literals are not sent to the resolver. Raises BadRequest.
    """
    name = _normalise_host(host)
    literal = _ip_literal(name)
    addresses = [name] if literal is not None else await (resolver or system_resolver)(name, port)
    allowed = policy.allows_host(name)
    checked: list[str] = []
    for address in addresses:
        ip = _ip_literal(address)
        if ip is None or not (allowed or policy.allows_address(ip)):
            raise BadRequest(NON_PUBLIC, host=name)
        if str(ip) not in checked:
            checked.append(str(ip))
    if not checked:
        raise BadRequest("callback host could not be resolved", host=name)
    return checked


class _PinningBackend(httpcore.AsyncNetworkBackend):
    """Resolves and checks the host at connect time and connects only to the checked addresses."""

    def __init__(self, policy: UrlPolicy, resolver: Resolver | None, inner: httpcore.AsyncNetworkBackend) -> None:
        self._policy = policy
        self._resolver = resolver
        self._inner = inner

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            with anyio.fail_after(timeout):  # the lookup counts against the connect timeout
                addresses = await resolve_and_check(host, port, self._policy, resolver=self._resolver)
        except TimeoutError:
            raise httpcore.ConnectTimeout("callback host lookup timed out") from None
        error: Exception = httpcore.ConnectError("no address to connect to")
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        raise error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not allowed for outbound requests")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class PinnedTransport(httpx.AsyncHTTPTransport):
    """An HTTP/1.1 transport that applies a `UrlPolicy` to every request and every connection.

    `resolver` and `network_backend` exist for tests; `ssl_context` for a private CA. There is no
    way to disable certificate verification, and no proxy support (a proxy must do its own
    filtering; `trust_env` proxies are never used).
    """

    def __init__(
        self,
        policy: UrlPolicy,
        *,
        resolver: Resolver | None = None,
        ssl_context: ssl.SSLContext | None = None,
        limits: httpx.Limits = DEFAULT_LIMITS,
        network_backend: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        context = ssl_context if ssl_context is not None else httpx.create_ssl_context()
        super().__init__(verify=context, limits=limits)
        self._policy = policy
        # httpx doesn't expose `network_backend`, so replace its pool with one built from the same
        # arguments plus the pinning backend (httpx is pinned to <0.29 in pyproject.toml).
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_PinningBackend(policy, resolver, network_backend or httpcore.AnyIOBackend()),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        check_url_syntax(str(request.url), self._policy)
        return await super().handle_async_request(request)
