"""Outbound URL safety (security.md §6): every blocked and allowed vector, DNS rebinding, pinning."""

from __future__ import annotations

import ipaddress
import socket
import ssl
from collections.abc import Iterable, Mapping

import anyio
import httpcore
import httpx
import pytest

from gateway.exceptions import BadRequest
from gateway.security import ssrf
from gateway.security.ssrf import (
    MAX_URL_CHARS,
    NON_PUBLIC,
    ParsedUrl,
    PinnedTransport,
    Resolver,
    UrlPolicy,
    check_url_syntax,
    is_public_address,
    resolve_and_check,
)

pytestmark = pytest.mark.anyio

STRICT = UrlPolicy()
HTTP_OK = UrlPolicy(allow_http=True)
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
OK_CLOSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
REDIRECT = (
    b"HTTP/1.1 302 Found\r\nLocation: http://169.254.169.254/latest/meta-data/\r\n"
    b"Content-Length: 0\r\nConnection: close\r\n\r\n"
)


def pinned_client(
    policy: UrlPolicy,
    *,
    resolver: Resolver | None = None,
    timeout: float | httpx.Timeout = 15.0,
    ssl_context: ssl.SSLContext | None = None,
    network_backend: httpcore.AsyncNetworkBackend | None = None,
) -> httpx.AsyncClient:
    """An httpx client over `PinnedTransport`, as the upstreams build theirs: no redirects, no env config."""
    transport = PinnedTransport(policy, resolver=resolver, ssl_context=ssl_context, network_backend=network_backend)
    return httpx.AsyncClient(transport=transport, follow_redirects=False, trust_env=False, timeout=timeout)


async def safe_request(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    policy: UrlPolicy,
    headers: Mapping[str, str] | None = None,
    content: bytes | None = None,
    timeout: float | httpx.Timeout = 15.0,
) -> httpx.Response:
    """One request to a user-supplied URL: its form checked first, redirects never followed."""
    check_url_syntax(url, policy)
    return await client.request(method, url, headers=headers, content=content, timeout=timeout, follow_redirects=False)


class FakeResolver:
    """Answers from a table; a list of answers per name is consumed one lookup at a time."""

    def __init__(self, table: dict[str, list[list[str]]]) -> None:
        self.table = table
        self.lookups: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        answers = self.table[host]
        return answers.pop(0) if len(answers) > 1 else answers[0]


class FakeStream(httpcore.AsyncNetworkStream):
    def __init__(self, responses: list[bytes]) -> None:
        self.buffer = list(responses)  # one response per read: enough for keep-alive tests
        self.written = b""
        self.server_hostname: str | None = None

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self.buffer.pop(0) if self.buffer else b""

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.written += buffer

    async def aclose(self) -> None:
        pass

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        self.server_hostname = server_hostname
        return self


class FakeBackend(httpcore.AsyncNetworkBackend):
    """Records where connections go; never touches the network."""

    def __init__(self, *responses: bytes, refuse: Iterable[str] = ()) -> None:
        self.responses = list(responses) or [OK]
        self.refuse = set(refuse)
        self.connects: list[tuple[str, int]] = []
        self.streams: list[FakeStream] = []
        self.slept: list[float] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.connects.append((host, port))
        if host in self.refuse:
            raise httpcore.ConnectError("connection refused")
        stream = FakeStream(self.responses)
        self.streams.append(stream)
        return stream

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


async def vet(url: str, policy: UrlPolicy = HTTP_OK, resolver: ssrf.Resolver | None = None) -> list[str]:
    parsed = check_url_syntax(url, policy)
    return await resolve_and_check(parsed.host, parsed.port, policy, resolver=resolver)


# -- security.md §6 vectors -------------------------------------------------------------------

BLOCKED_LITERALS = [
    "http://127.0.0.1/",
    "http://0.0.0.0/",
    "http://0.1.2.3/",
    "http://[::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:0.0.0.1]/",
    "http://10.254.0.0/",
    "http://172.16.10.65/",
    "http://192.168.10.65/",
    "http://169.254.169.254/latest/meta-data/",
    "http://100.100.0.0/",
    "http://192.0.0.0/",
    "http://192.0.2.255/",
    "http://198.51.100.65/",
    "http://203.0.113.6/",
    "http://198.18.0.0/",
    "http://250.10.20.30/",
    "http://255.255.255.255/",
    "http://[fe80::1]/",
    "http://[fc00::1]/",
    "http://[2001:db8::1]/",
    "http://2130706433/",  # numeric forms: getaddrinfo reads them as 127.0.0.1
    "http://0x7f000001/",
    "http://127.1/",
    "http://[::FFFF:7F00:1]/",
    "https://127.0.0.1:8443/",
    "http://224.0.0.1/",
    "http://[ff02::1]/",
]


@pytest.mark.parametrize("url", BLOCKED_LITERALS)
async def test_blocked_addresses_through_the_default_resolver(url: str) -> None:
    with pytest.raises(BadRequest, match=NON_PUBLIC):
        await vet(url)


async def test_octal_form_is_refused_by_the_parser_and_by_the_resolver() -> None:
    with pytest.raises(BadRequest, match="not a valid URL"):
        await vet("http://0177.0.0.1/")


@pytest.mark.parametrize("host", ["2130706433", "0x7f000001", "0177.0.0.1", "127.1", "0x7f.1", "017700000001"])
async def test_numeric_host_forms_resolve_to_loopback_and_are_blocked(host: str) -> None:
    assert ipaddress.ip_address((await anyio.getaddrinfo(host, 80))[0][4][0]).is_loopback
    with pytest.raises(BadRequest, match=NON_PUBLIC):
        await resolve_and_check(host, 80, HTTP_OK)


async def test_userinfo_is_refused() -> None:
    with pytest.raises(BadRequest, match="user name or password") as info:
        await vet("http://evil.example@127.0.0.1/")
    assert "evil" not in info.value.message
    with pytest.raises(BadRequest, match="user name or password"):
        await vet("https://user:hunter2@hooks.example.com/")


async def test_public_name_pointing_at_loopback_is_blocked() -> None:
    resolver = FakeResolver({"localtest.me": [["127.0.0.1"]]})
    with pytest.raises(BadRequest, match=NON_PUBLIC):
        await vet("http://localtest.me/", resolver=resolver)
    assert resolver.lookups == ["localtest.me"]


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "gopher://127.0.0.1:6379/_INFO", "ftp://example.com/", "dict://127.0.0.1:11211/"]
)
async def test_other_schemes_are_refused(url: str) -> None:
    with pytest.raises(BadRequest, match="must use http or https"):
        await vet(url)
    with pytest.raises(BadRequest, match="must use https"):
        await vet(url, STRICT)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://1.1.1.1/", ["1.1.1.1"]),
        ("https://[2001:4860:4860::8888]/", ["2001:4860:4860::8888"]),
        ("https://[::ffff:8.8.8.8]/", ["::ffff:808:808"]),
    ],
)
async def test_allowed_vectors(url: str, expected: list[str]) -> None:
    assert await vet(url, STRICT) == expected


# -- IPv6 forms that reach an IPv4 address (issue 11, item 10) -----------------------------------

# Each reaches 169.254.169.254, 127.0.0.1 or 10.0.0.1 through a translator, a relay or a tunnel.
EMBEDDED_V4_VECTORS = [
    "::ffff:0:a9fe:a9fe",  # IPv4-translated (RFC 6145 SIIT): ::ffff:0:a.b.c.d
    "::ffff:0:7f00:1",
    "::ffff:0:a00:1",
    "64:ff9b::a9fe:a9fe",  # NAT64 well-known prefix (RFC 6052)
    "64:ff9b::7f00:1",
    "64:ff9b:1::a9fe:a9fe",  # local-use NAT64 (RFC 8215), /48 and /96 layouts
    "64:ff9b:1:a9fe:a9:fe00::",
    "64:ff9b:1:ffff:ffff:ffff:a9fe:a9fe",
    "64:ff9b:0:0:0:ffff:a9fe:a9fe",  # NAT64 /32 outside the well-known /96
    "::ffff:a9fe:a9fe",  # IPv4-mapped, written as hex
    "::a9fe:a9fe",  # IPv4-compatible (deprecated)
    "2002:a9fe:a9fe::1",  # 6to4
    "2002:7f00:1::",
    "2001:0:a9fe:a9fe::1",  # Teredo
    "2001:4860::5efe:a9fe:a9fe",  # ISATAP interface id, u/g bits clear and set
    "2001:4860::200:5efe:a00:1",
]


@pytest.mark.parametrize("address", EMBEDDED_V4_VECTORS)
async def test_ipv6_forms_of_non_public_ipv4_are_refused_as_literals(address: str) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is False
    with pytest.raises(BadRequest, match=NON_PUBLIC):
        await vet(f"https://[{address}]/hook", STRICT)


@pytest.mark.parametrize("address", EMBEDDED_V4_VECTORS)
async def test_ipv6_forms_of_non_public_ipv4_are_refused_from_dns_answers(address: str) -> None:
    resolver = FakeResolver({"hooks.example": [["93.184.216.34", address]]})
    with pytest.raises(BadRequest, match=NON_PUBLIC):
        await vet("https://hooks.example/hook", STRICT, resolver=resolver)


@pytest.mark.parametrize("address", EMBEDDED_V4_VECTORS)
async def test_ipv6_forms_of_non_public_ipv4_are_refused_at_connect_time(address: str) -> None:
    # Public when the URL was submitted, then the name answers with a translated address.
    resolver = FakeResolver({"hooks.example": [["93.184.216.34"], [address]]})
    await vet("https://hooks.example/hook", STRICT, resolver=resolver)
    backend = FakeBackend()
    async with pinned_client(STRICT, resolver=resolver, network_backend=backend) as client:
        with pytest.raises(BadRequest, match=NON_PUBLIC):
            await safe_request(client, "POST", "https://hooks.example/hook", policy=STRICT)
    assert backend.connects == []


@pytest.mark.parametrize(
    "address", ["::ffff:0:808:808", "64:ff9b::808:808", "2002:808:808::1", "2001:4860::200:5efe:808:808"]
)
async def test_ipv6_forms_of_public_ipv4_are_allowed(address: str) -> None:
    assert await vet(f"https://[{address}]/hook", STRICT) == [address]


# -- is_public_address ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "0.0.0.0", "10.0.0.1", "100.64.0.1", "100.127.255.255", "127.0.0.1", "127.255.255.254", "169.254.0.1",
        "172.16.0.1", "172.31.255.255", "192.0.0.8", "192.0.2.1", "192.168.0.1", "198.18.0.1", "198.19.255.255",
        "198.51.100.1", "203.0.113.1", "224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255",
        "::", "::1", "::7f00:1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "64:ff9b::7f00:1",
        "64:ff9b::a9fe:a9fe", "64:ff9b:1::1", "2002:7f00:1::", "2002:a00:1::1", "2002:a9fe:a9fe::",
        "2001::1", "2001:db8::1", "fc00::1", "fd12:3456::1", "fe80::1", "fec0::1", "ff02::1", "100::1",
        "2001:10::1",
    ],
)  # fmt: skip
def test_non_public_addresses(address: str) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is False


@pytest.mark.parametrize(
    "address",
    [
        "1.1.1.1", "8.8.8.8", "93.184.216.34", "11.0.0.1", "100.63.255.255", "100.128.0.1", "172.15.255.255",
        "172.32.0.1", "192.167.255.255", "192.169.0.1", "198.17.255.255", "198.20.0.1", "223.255.254.1",
        "2606:4700:4700::1111", "2001:4860:4860::8888", "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::",
    ],
)  # fmt: skip
def test_public_addresses(address: str) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is True


# -- check_url_syntax -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "empty"),
        ("https://a.example/" + "a" * MAX_URL_CHARS, "longer than 2048"),
        ("https://a.example/ x", "spaces or control"),
        ("https://a.example/\x7f", "spaces or control"),
        ("https://a.example/\nHost: evil", "spaces or control"),
        ("https://a.example:b/", "not a valid URL"),
        ("https://[::1/", "not a valid URL"),
        ("/relative/path", "must use https"),
        ("https:///path", "no host"),
        ("https://:443/", "no host"),
        ("https://exa$mple.com/", "not a valid host name"),
        ("https://a%41.com/", "not a valid host name"),
        ("https://a..b/", "not a valid host name"),
        ("https://./", "not a valid host name"),
        ("https://[fe80::1%25eth0]/", "not a valid host name"),
        ("https://" + "a." * 126 + "com/", "not a valid host name"),
        ("https://a.example:0/", "port is not valid"),
        ("https://a.example:99999/", "port is not valid"),
        ("http://a.example/", "must use https"),
    ],
)
def test_syntax_errors(url: str, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        check_url_syntax(url, STRICT)


def test_syntax_refuses_non_str() -> None:
    with pytest.raises(BadRequest, match="empty"):
        check_url_syntax(None, STRICT)  # type: ignore[arg-type]


def test_errors_never_echo_the_path_or_credentials() -> None:
    for url in ("https://u:hunter2@a.example/?token=SECRET", "http://a.example/?token=SECRET", "https://a.example:1/x"):
        with pytest.raises(BadRequest) as info:
            check_url_syntax(url, UrlPolicy(allowed_ports=frozenset({443})))
        assert "hunter2" not in str(info.value) and "SECRET" not in str(info.value)


def test_parsed_url() -> None:
    parsed = check_url_syntax("HTTPS://Hooks.Example.COM/cb?token=SECRET#frag", STRICT)
    assert parsed == ParsedUrl("https", "hooks.example.com", 443, "/cb?token=SECRET")
    assert "SECRET" not in repr(parsed)
    assert parsed.origin == "https://hooks.example.com:443"
    assert check_url_syntax("http://a.example/", HTTP_OK).port == 80
    assert check_url_syntax("https://a.example:8443", STRICT).port == 8443
    assert check_url_syntax("https://bücher.de/", STRICT).host == "xn--bcher-kva.de"
    v6 = check_url_syntax("https://[2001:4860:4860:0::8888]:8443/", STRICT)
    assert v6.host == "2001:4860:4860::8888" and v6.origin == "https://[2001:4860:4860::8888]:8443"
    assert check_url_syntax("https://a.example./", STRICT).host == "a.example."


def test_port_allow_list() -> None:
    policy = UrlPolicy(allowed_ports=frozenset({443}))
    assert check_url_syntax("https://a.example/", policy).port == 443
    with pytest.raises(BadRequest, match="port 8443 is not allowed"):
        check_url_syntax("https://a.example:8443/", policy)


def test_policy_normalises_allowed_hosts() -> None:
    policy = UrlPolicy(allowed_hosts=frozenset({"LocalHost.", "[::1]", "127.0.0.1"}))
    assert policy.allowed_hosts == frozenset({"localhost", "::1", "127.0.0.1"})
    assert policy.allows_host("LOCALHOST") and policy.allows_host("[0:0::1]") and not policy.allows_host("a.example")


# -- resolve_and_check ------------------------------------------------------------------------


async def test_allowed_hosts_bypass_the_address_checks() -> None:
    policy = UrlPolicy(allow_http=True, allowed_hosts=frozenset({"127.0.0.1", "localhost"}))
    assert await vet("http://127.0.0.1:8080/hook", policy) == ["127.0.0.1"]
    assert "127.0.0.1" in await vet("http://localhost:8080/hook", policy)
    with pytest.raises(BadRequest, match=NON_PUBLIC):
        await vet("http://127.0.0.2/", policy)


async def test_every_address_must_be_public() -> None:
    resolver = FakeResolver({"mixed.example": [["93.184.216.34", "10.0.0.1"]]})
    with pytest.raises(BadRequest, match=NON_PUBLIC) as info:
        await resolve_and_check("mixed.example", 443, STRICT, resolver=resolver)
    assert info.value.context == {"host": "mixed.example"}


async def test_addresses_are_deduplicated_in_order() -> None:
    resolver = FakeResolver({"a.example": [["1.1.1.1", "2606:4700:4700::1111", "1.1.1.1"]]})
    assert await resolve_and_check("A.Example.", 443, STRICT, resolver=resolver) == ["1.1.1.1", "2606:4700:4700::1111"]
    assert resolver.lookups == ["a.example"]


@pytest.mark.parametrize("answer", [["fe80::1%eth0"], ["not-an-ip"], ["1.1.1.1", ""]])
async def test_unparseable_resolver_answers_are_refused(answer: list[str]) -> None:
    with pytest.raises(BadRequest, match=NON_PUBLIC):
        await resolve_and_check("odd.example", 443, STRICT, resolver=FakeResolver({"odd.example": [answer]}))


async def test_no_addresses() -> None:
    with pytest.raises(BadRequest, match="could not be resolved"):
        await resolve_and_check("empty.example", 443, STRICT, resolver=FakeResolver({"empty.example": [[]]}))


async def test_ip_literals_skip_the_resolver() -> None:
    async def boom(host: str, port: int) -> list[str]:
        raise AssertionError("resolver called for a literal")

    assert await resolve_and_check("[2606:4700:4700::1111]", 443, STRICT, resolver=boom) == ["2606:4700:4700::1111"]


async def test_default_resolver_failures(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(BadRequest, match="could not be resolved"):
        await resolve_and_check("é" * 70, 443, STRICT)  # IDNA error before any lookup

    async def gaierror(*args: object, **kwargs: object) -> list[object]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(anyio, "getaddrinfo", gaierror)  # what system_resolver calls
    with pytest.raises(BadRequest, match="could not be resolved") as info:
        await resolve_and_check("nonexistent.example", 443, STRICT)
    assert info.value.context == {"host": "nonexistent.example"}


# -- PinnedTransport / safe_request -----------------------------------------------------------

URL = "https://hooks.example.com/cb?sig=1"


async def test_connects_to_the_checked_ip_with_host_header_and_sni() -> None:
    backend = FakeBackend()
    resolver = FakeResolver({"hooks.example.com": [["93.184.216.34"]]})
    async with pinned_client(STRICT, resolver=resolver, network_backend=backend) as client:
        response = await safe_request(
            client, "POST", URL, policy=STRICT, headers={"webhook-id": "msg_1"}, content=b'{"a":1}'
        )
    assert response.status_code == 200 and response.content == b"ok"
    assert backend.connects == [("93.184.216.34", 443)]
    stream = backend.streams[0]
    assert stream.server_hostname == "hooks.example.com"
    assert stream.written.startswith(b"POST /cb?sig=1 HTTP/1.1\r\nHost: hooks.example.com\r\n")
    assert b"webhook-id: msg_1" in stream.written and stream.written.endswith(b'{"a":1}')


async def test_dns_rebinding_is_refused_on_the_second_call() -> None:
    backend = FakeBackend(OK_CLOSE)  # no keep-alive: every call opens (and checks) a connection
    resolver = FakeResolver({"rebind.example": [["93.184.216.34"], ["127.0.0.1"]]})
    url = "https://rebind.example/hook"
    async with pinned_client(STRICT, resolver=resolver, network_backend=backend) as client:
        assert (await safe_request(client, "POST", url, policy=STRICT, content=b"{}")).status_code == 200
        with pytest.raises(BadRequest, match=NON_PUBLIC):
            await safe_request(client, "POST", url, policy=STRICT, content=b"{}")
    assert backend.connects == [("93.184.216.34", 443)]  # never 127.0.0.1
    assert resolver.lookups == ["rebind.example", "rebind.example"]


async def test_keep_alive_connection_stays_pinned_to_the_checked_ip() -> None:
    backend = FakeBackend(OK, OK)
    resolver = FakeResolver({"rebind.example": [["93.184.216.34"], ["127.0.0.1"]]})
    async with pinned_client(STRICT, resolver=resolver, network_backend=backend) as client:
        for _ in range(2):
            assert (await safe_request(client, "GET", "https://rebind.example/", policy=STRICT)).status_code == 200
    assert backend.connects == [("93.184.216.34", 443)]
    assert resolver.lookups == ["rebind.example"]


async def test_redirects_are_not_followed() -> None:
    backend = FakeBackend(REDIRECT)
    resolver = FakeResolver({"hooks.example.com": [["93.184.216.34"]]})
    transport = PinnedTransport(HTTP_OK, resolver=resolver, network_backend=backend)
    async with httpx.AsyncClient(transport=transport, follow_redirects=True) as client:
        response = await safe_request(client, "POST", URL, policy=HTTP_OK, content=b"{}")
        assert response.status_code == 302  # returned as is; the caller counts 3xx as a failure
        assert backend.connects == [("93.184.216.34", 443)]
        # Even a client told to follow redirects can't reach the metadata address.
        with pytest.raises(BadRequest, match=NON_PUBLIC):
            await client.get(URL)
    assert backend.connects == [("93.184.216.34", 443), ("93.184.216.34", 443)]


async def test_hosts_sharing_an_ip_get_their_own_connection_and_sni() -> None:
    backend = FakeBackend()
    resolver = FakeResolver({"a.example": [["93.184.216.34"]], "b.example": [["93.184.216.34"]]})
    async with pinned_client(STRICT, resolver=resolver, network_backend=backend) as client:
        await safe_request(client, "GET", "https://a.example/", policy=STRICT)
        await safe_request(client, "GET", "https://b.example/", policy=STRICT)
    assert [stream.server_hostname for stream in backend.streams] == ["a.example", "b.example"]


async def test_falls_back_to_the_next_checked_address() -> None:
    backend = FakeBackend(refuse={"2606:4700:4700::1111"})
    resolver = FakeResolver({"dual.example": [["2606:4700:4700::1111", "1.1.1.1"]]})
    async with pinned_client(STRICT, resolver=resolver, network_backend=backend) as client:
        assert (await safe_request(client, "GET", "https://dual.example/", policy=STRICT)).status_code == 200
    assert backend.connects == [("2606:4700:4700::1111", 443), ("1.1.1.1", 443)]


async def test_all_addresses_refusing_is_a_connect_error() -> None:
    backend = FakeBackend(refuse={"1.1.1.1", "1.0.0.1"})
    resolver = FakeResolver({"down.example": [["1.1.1.1", "1.0.0.1"]]})
    async with pinned_client(STRICT, resolver=resolver, network_backend=backend) as client:
        with pytest.raises(httpx.ConnectError):
            await safe_request(client, "GET", "https://down.example/", policy=STRICT)
    assert len(backend.connects) == 2


async def test_slow_lookup_counts_against_the_connect_timeout() -> None:
    async def slow(host: str, port: int) -> list[str]:
        await anyio.sleep_forever()
        raise AssertionError  # pragma: no cover

    backend = FakeBackend()
    async with pinned_client(STRICT, resolver=slow, network_backend=backend) as client:
        with pytest.raises(httpx.ConnectTimeout):
            await safe_request(client, "GET", URL, policy=STRICT, timeout=httpx.Timeout(5.0, connect=0.01))
    assert backend.connects == []


async def test_transport_checks_syntax_on_every_request() -> None:
    backend = FakeBackend()
    resolver = FakeResolver({"hooks.example.com": [["93.184.216.34"]]})
    async with pinned_client(STRICT, resolver=resolver, network_backend=backend) as client:
        for url in ("https://user:pw@hooks.example.com/", "http://hooks.example.com/"):
            with pytest.raises(BadRequest):
                await client.get(url)  # straight through the client, no safe_request
        with pytest.raises(BadRequest, match="must use https"):
            await safe_request(client, "GET", "http://hooks.example.com/", policy=STRICT)
    assert backend.connects == [] and resolver.lookups == []


async def test_default_backend_refuses_private_addresses_without_connecting() -> None:
    async with pinned_client(STRICT, ssl_context=ssl.create_default_context()) as client:
        with pytest.raises(BadRequest, match=NON_PUBLIC):
            await safe_request(client, "GET", "https://127.0.0.1/", policy=STRICT)
        with pytest.raises(BadRequest, match=NON_PUBLIC):
            await safe_request(client, "GET", "https://2130706433/", policy=STRICT)


async def test_backend_refuses_unix_sockets_and_delegates_sleep() -> None:
    inner = FakeBackend()
    backend = ssrf._PinningBackend(STRICT, None, inner)
    with pytest.raises(httpcore.ConnectError, match="unix sockets"):
        await backend.connect_unix_socket("/var/run/docker.sock")
    await backend.sleep(0.5)
    assert inner.slept == [0.5]
