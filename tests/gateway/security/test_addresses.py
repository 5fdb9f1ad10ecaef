"""`private_url_host`: URLs someone else fetches (Dify downloading a file) name public hosts only."""

from __future__ import annotations

import pytest

from gateway.security.addresses import private_url_host


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("https://169.254.169.254/x", "169.254.169.254"),
        ("http://10.1.2.3/x", "10.1.2.3"),
        ("https://[::1]/x", "::1"),
        ("https://[64:ff9b::a00:1]/x", "64:ff9b::a00:1"),  # NAT64 to 10.0.0.1
        ("https://0x7f000001/x", "0x7f000001"),
        ("https://0177.0.0.1/x", "0177.0.0.1"),
        ("https://127.1/x", "127.1"),
        ("https://LOCALHOST./x", "localhost"),
        ("https://db.local/x", "db.local"),
        ("https://metadata.google.internal/x", "metadata.google.internal"),
        ("https://intranet/x", "intranet"),
        ("https://[::1/x", "?"),  # unreadable
    ],
)
def test_hosts_inside_a_network(url: str, host: str) -> None:
    assert private_url_host(url) == host


@pytest.mark.parametrize(
    "url", ["https://example.com/a.png", "https://8.8.8.8/x", "https://[2606:4700::1111]/x", "https://cdn.x.io:8443/a"]
)
def test_public_hosts_pass(url: str) -> None:
    assert private_url_host(url) is None
