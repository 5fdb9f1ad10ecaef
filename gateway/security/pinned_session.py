"""`PinnedSession`: the outbound SSRF rules of gateway/security/ssrf.py over aiohttp.

For senders whose cost per request matters (signed callbacks: a POST through httpx + httpcore
costs ~10x the CPU of the same POST through aiohttp). The same three layers as `PinnedTransport`:

1. Every URL passes `check_url_syntax`; aiohttp then parses it (yarl) as given, and a host name
   yarl reads differently from the check is refused, so what is checked is what is reached.
2. Host names are resolved by `CheckedResolver` (gateway/security/aiohttpguard.py), which runs
   `resolve_and_check` and hands aiohttp only the checked addresses. aiohttp connects to those
   and nothing else (the Host header, TLS SNI and certificate check keep the name), and reuses
   them for `dns_ttl` seconds: the pinned resolution, never a second unchecked one. An IP
   literal, which aiohttp never gives to a resolver, is checked here before the request.
3. Each new connection goes through (2); a keep-alive connection was checked when it opened.
   aiohttp keeps one pool per target (scheme, host, port).

Redirects are never followed; TLS is always verified (the same CA bundle as httpx); no proxy,
`.netrc` or cookies; bodies are not decompressed. Errors name at most the host, like ssrf.py's.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import aiohttp
import httpx
from aiohttp.helpers import is_ip_address
from yarl import URL

from gateway.exceptions import BadRequest
from gateway.security.aiohttpguard import CheckedResolver
from gateway.security.ssrf import ParsedUrl, Resolver, UrlPolicy, check_url_syntax, resolve_and_check

__all__ = ["DNS_TTL_S", "PinnedSession"]

DNS_TTL_S = 10.0  # seconds a checked resolution is reused for new connections to the same host
MAX_CONNECTIONS = 100  # in all, as ssrf.DEFAULT_LIMITS
KEEPALIVE_S = 5.0  # idle connections kept this long, as httpx's default


class PinnedSession:
    """An aiohttp session for user-supplied URLs (see the module docstring), opened on first use."""

    def __init__(
        self,
        policy: UrlPolicy,
        *,
        timeout: float,
        resolver: Resolver | None = None,
        ssl_context: ssl.SSLContext | None = None,
        dns_ttl: float = DNS_TTL_S,
    ) -> None:
        self._policy = policy
        self._limit = aiohttp.ClientTimeout(total=timeout)
        self._resolver = resolver
        self._ssl = ssl_context
        self._dns_ttl = dns_ttl
        self._session: aiohttp.ClientSession | None = None
        self._closed = False
        self._literals: set[str] = set()  # IP literals that passed the policy (it never changes)

    @property
    def policy(self) -> UrlPolicy:
        return self._policy

    @property
    def is_closed(self) -> bool:
        return self._closed

    @property
    def opened(self) -> bool:
        """Whether the aiohttp session was opened: until then nothing was resolved or connected."""
        return self._session is not None

    async def aclose(self) -> None:
        self._closed = True
        if self._session is not None:
            await self._session.close()

    def _open_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("the session is closed")
        if self._session is None:
            connector = aiohttp.TCPConnector(
                resolver=CheckedResolver(self._policy, self._resolver),
                ttl_dns_cache=max(1, round(self._dns_ttl)),
                ssl=self._ssl if self._ssl is not None else httpx.create_ssl_context(),
                limit=MAX_CONNECTIONS,
                keepalive_timeout=KEEPALIVE_S,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),  # receivers' cookies are state nobody asked for
                auto_decompress=False,  # a gzip bomb stays small
                trust_env=False,  # no proxies or .netrc credentials from the environment
                timeout=self._limit,
                skip_auto_headers=("Accept-Encoding",),
            )
        return self._session

    @asynccontextmanager
    async def post(
        self,
        url: str,
        *,
        content: bytes,
        headers: Mapping[str, str],
        checked: ParsedUrl | None = None,
        timeout: float | None = None,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """POST `content` to `url`, never following a redirect; the response, open until the
        block ends. `BadRequest` when the URL or an address it reaches is not allowed. `checked`:
        what `check_url_syntax(url, policy)` returned, if the caller ran it already. `timeout`:
        seconds for the whole exchange, instead of the session's."""
        if checked is None:
            checked = check_url_syntax(url, self._policy)
        try:
            target = URL(url, encoded=True)  # as given: httpx, too, sends the path and query as given
        except ValueError:
            raise BadRequest("callback URL is not a valid URL") from None
        host = target.raw_host or ""
        if (target.scheme.lower(), target.port) != (checked.scheme, checked.port):
            raise BadRequest("callback URL is not a valid URL")
        if is_ip_address(host):  # aiohttp connects to a literal without asking the resolver
            if host not in self._literals:
                await resolve_and_check(host, checked.port, self._policy, resolver=self._resolver)
                if len(self._literals) >= 1024:
                    self._literals.clear()
                self._literals.add(host)
        elif host.lower() != checked.host:
            raise BadRequest("callback URL is not a valid URL")
        # Never `timeout=None` to aiohttp: that would mean no timeout at all, not the session's.
        limit = self._limit if timeout is None else aiohttp.ClientTimeout(total=timeout)
        session = self._open_session()
        async with session.post(target, data=content, headers=dict(headers), allow_redirects=False, timeout=limit) as r:
            yield r
