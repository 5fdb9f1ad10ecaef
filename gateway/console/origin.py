"""Is a browser request same-origin? What the console checks before any state-changing request.

Browsers send `Sec-Fetch-Site` and `Origin` with a POST; a page on another site can make the
browser send one, with the session cookie on lax browsers, but can't make these headers lie. A
request without either (curl, the tests) is judged by its CSRF token alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

__all__ = ["SAFE_METHODS", "cross_site", "header"]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_SAME = frozenset({"same-origin", "none"})  # none: typed into the address bar, a bookmark


def header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None


def cross_site(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """True when the browser says the request comes from another origin than the one it is sent to."""
    headers = list(headers)
    fetch_site = header(headers, b"sec-fetch-site")
    if fetch_site is not None and fetch_site.strip().lower() not in _SAME:
        return True
    origin = header(headers, b"origin")
    if origin is None:
        return False
    host = header(headers, b"host")
    if origin.strip() == "null" or host is None:
        return True
    try:
        parts = urlsplit(origin.strip())
    except ValueError:
        return True
    # Behind a TLS-terminating proxy the scheme seen here is the proxy's unless it is trusted:
    # compare the host (and port) only; the browser's Sec-Fetch-Site covers the scheme.
    return parts.netloc.lower() != host.strip().lower()
