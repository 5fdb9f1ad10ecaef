"""The access log line, which never writes an endpoint's URL token (security.md §5).

uvicorn's own access log prints the full path, and the path of `/e/{token}` is a live secret; the
gateway turns uvicorn's off and logs `/e/<sha256 prefix>…` instead. The gateway's one middleware
layer (`gateway.http.middleware.EdgeMiddleware`) times each request and calls `log_access`.
"""

from __future__ import annotations

import logging

from starlette.types import Scope

from gateway.admin.principal import Principal
from gateway.security.tokens import redact_path

__all__ = ["access_log_enabled", "log_access"]

logger = logging.getLogger("gateway.access")


def access_log_enabled() -> bool:
    """Whether access lines are written at all (checked per request: the level may change)."""
    return logger.isEnabledFor(logging.INFO)


def log_access(scope: Scope, status: int, elapsed: float) -> None:
    """One line per request: client, caller, method, redacted path, status and milliseconds."""
    client = scope.get("client")
    auth = scope.get("auth")  # the admin API's Principal: "operator" or a token id, never a token
    logger.info(
        '%s %s "%s %s" %d %.1fms',
        client[0] if client else "-",
        auth.log_id if isinstance(auth, Principal) else "-",
        scope["method"],
        redact_path(scope["path"]),
        status,
        elapsed * 1000,
    )
