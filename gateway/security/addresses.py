"""Which addresses are public: the pure rules under the SSRF checks (security.md §6).

`is_public_address` judges one IP address; `private_url_host` tells, without DNS, whether a URL
names a host that can only be inside a network (a non-public IP literal in any spelling,
`localhost`, `.local`, `.internal`, a single-label name) — for URLs that someone else fetches,
such as the files Dify downloads by URL. Callbacks, which the gateway fetches itself, are checked
on their resolved addresses (gateway/security/ssrf.py).
"""

from __future__ import annotations

import ipaddress
import re
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from urllib.parse import urlsplit

__all__ = ["is_public_address", "private_url_host"]

# security.md §6 (Svix `is_allowed()`), plus multicast, Teredo, site-local and local-use NAT64.
# fmt: off
_BLOCKED_V4 = tuple(IPv4Network(net) for net in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8",  # this network, private, CGNAT, loopback
    "169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16",  # link-local (cloud metadata), private
    "192.0.0.0/24", "192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24",  # IETF, documentation
    "198.18.0.0/15", "224.0.0.0/4", "240.0.0.0/4",  # benchmarking, multicast, reserved + broadcast
))
_BLOCKED_V6 = tuple(IPv6Network(net) for net in (
    "::/96",  # unspecified, loopback, deprecated IPv4-compatible
    # NAT64 outside the well-known /96 (judged by its IPv4 below): the local-use /48 (RFC 8215),
    # whose IPv4 sits where the operator's prefix length puts it, and the unassigned rest.
    "64:ff9b::/32",
    "2001::/32", "2001:db8::/32",  # Teredo (tunnels to an IPv4 server and client), documentation
    "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",  # unique local, link-local, site-local, multicast
))
# Prefixes whose last 32 bits are the IPv4 address actually reached: IPv4-mapped (RFC 4291),
# IPv4-translated (RFC 6145 / RFC 2765 SIIT) and the NAT64 well-known prefix (RFC 6052).
_TRANSLATED_V4 = tuple(IPv6Network(net) for net in ("::ffff:0:0/96", "::ffff:0:0:0/96", "64:ff9b::/96"))
# fmt: on
_ISATAP_IID = 0x00005EFE  # RFC 5214 interface id `0:5efe:a.b.c.d` (the u/g bit may be set: 200:5efe)


def _ip_literal(text: str) -> IPv4Address | IPv6Address | None:
    if "%" in text:  # IPv6 zone ids have no business in a callback URL
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _normalise_host(host: str) -> str:
    name = host.strip().lower().removeprefix("[").removesuffix("]").rstrip(".")
    literal = _ip_literal(name)
    return name if literal is None else str(literal)


def _translated_ipv4(ip: IPv6Address) -> IPv4Address | None:
    """The IPv4 address an IPv4-mapped, IPv4-translated or NAT64 (64:ff9b::/96) address reaches."""
    if any(ip in net for net in _TRANSLATED_V4):
        return IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _tunnelled_ipv4(ip: IPv6Address) -> IPv4Address | None:
    """The IPv4 endpoint inside a 6to4 (2002::/16) or ISATAP address, which a relay sends to."""
    if ip.sixtofour is not None:
        return ip.sixtofour
    if (int(ip) >> 32) & 0xFDFFFFFF == _ISATAP_IID:
        return IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public_address(ip: IPv4Address | IPv6Address) -> bool:
    """False for every private, loopback, link-local, reserved, documentation or multicast address.

    IPv6 forms that stand for an IPv4 address (mapped `::ffff:a.b.c.d`, translated
    `::ffff:0:a.b.c.d`, NAT64 `64:ff9b::a.b.c.d`) are judged by that IPv4 address; forms that
    tunnel to one (6to4, ISATAP) need both to be public; the other NAT64 prefixes, Teredo and
    IPv4-compatible addresses are refused outright. `ipaddress.is_global` is also required,
    which adds the rest of the IANA special-purpose registries.
    """
    if isinstance(ip, IPv6Address):
        translated = _translated_ipv4(ip)
        if translated is not None:
            return _is_public_ipv4(translated)
        if any(ip in net for net in _BLOCKED_V6):
            return False
        tunnelled = _tunnelled_ipv4(ip)
        return ip.is_global and (tunnelled is None or _is_public_ipv4(tunnelled))
    return _is_public_ipv4(ip)


def _is_public_ipv4(ip: IPv4Address) -> bool:
    return ip.is_global and not any(ip in net for net in _BLOCKED_V4)


# Names that never leave a network: RFC 6761/6762 special-use and the common internal suffixes.
_INTERNAL_SUFFIXES = (".localhost", ".local", ".internal", ".intranet", ".lan", ".home.arpa", ".corp")
# Hosts written only with digits, dots and hex letters (after a leading 0x) that `ipaddress` can't
# read, e.g. "2130706433", "0x7f000001", "0177.0.0.1", "127.1": URL fetchers read them as IPv4.
_NUMERIC_HOST = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)(?:\.(?:0x[0-9a-f]*|[0-9]+))*")


def private_url_host(url: str) -> str | None:
    """The host of `url` when it can only be inside a network (or can't be read), else None."""
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return "?"
    name = _normalise_host(host)
    if not name:
        return "?"
    literal = _ip_literal(name)
    if literal is not None:
        return None if is_public_address(literal) else name
    if _NUMERIC_HOST.fullmatch(name):
        return name  # an IPv4 in another spelling: never what a public file link looks like
    if name == "localhost" or "." not in name or name.endswith(_INTERNAL_SUFFIXES):
        return name
    return None
