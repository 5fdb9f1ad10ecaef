"""A Dify plugin's endpoint rules (werkzeug rules, one method each), matched on the gateway's side
the way the SDK matches them, so an unknown path or method is our 404/405 before the plugin is
bothered (the plugin dispatches the request again itself)."""

from __future__ import annotations

from collections.abc import Iterable

from werkzeug.exceptions import MethodNotAllowed as WerkzeugMethodNotAllowed, NotFound as WerkzeugNotFound
from werkzeug.routing import Map, RequestRedirect, Rule

from gateway.difyplugins.manifest import EndpointDeclaration
from gateway.exceptions import MethodNotAllowed, NotFound

__all__ = ["EndpointRules"]


class EndpointRules:
    def __init__(self, endpoints: Iterable[EndpointDeclaration]) -> None:
        self._map = Map([Rule(e.path, methods=[e.method], endpoint=e.path) for e in endpoints])

    def check(self, method: str, path: str) -> None:
        """Return if some endpoint takes `method` on `path`; `NotFound` or `MethodNotAllowed` otherwise."""
        adapter = self._map.bind("localhost")
        try:
            adapter.match(path, method)
        except RequestRedirect:
            # werkzeug's strict-slash redirect: the SDK turns it into its own 404 too.
            raise NotFound(f"this endpoint has no route {path}") from None
        except WerkzeugMethodNotAllowed as exc:
            allowed = tuple(exc.valid_methods or ())
            raise MethodNotAllowed("this route does not accept that method", allow=allowed) from None
        except WerkzeugNotFound:
            raise NotFound(f"this endpoint has no route {path}") from None
