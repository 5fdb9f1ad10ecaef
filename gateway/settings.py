"""Settings: the only module that reads the environment.

`Settings.from_env(os.environ)` builds a frozen value; everything else receives it. On the
embedded SQLite default with no admin token or secret key set, `bootstrap()` generates both once
and keeps them in a 0600 file beside the database, so a first start needs no configuration.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr

from gateway.exceptions import ConfigurationError

__all__ = ["Bootstrap", "Settings", "bootstrap", "sqlite_path"]

PREFIX = "GATEWAY_"
DEFAULT_STORE = "sqlite:///./gateway.db"
# Publicly known placeholder tokens people paste from docs; refused like LiteLLM refuses sk-1234.
WELL_KNOWN_TOKENS = frozenset({"changeme", "admin", "password", "secret", "sk-1234", "test", "token"})
MIN_SECRET_CHARS = 32


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"expected a boolean (true/false, 1/0, yes/no, on/off), got {value!r}")


def _csv(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting of the gateway. Environment names are `GATEWAY_` + the field name in capitals."""

    store: str = DEFAULT_STORE
    public_url: str = "http://127.0.0.1:8000"
    admin_token: SecretStr | None = None
    # Oldest to newest: the newest encrypts and signs, all of them decrypt and verify (rotation).
    secret_key: tuple[SecretStr, ...] = ()
    host: str = "127.0.0.1"
    port: int = 8000
    max_body_bytes: int = 1024 * 1024
    body_timeout: float = 10.0
    rate_limit_per_minute: int = 600
    request_log_size: int = 100
    log_bodies: bool = False
    rotation_grace: float = 24 * 3600.0
    workers: int = 8
    # Workers of each process that deliver callbacks only, so deliveries never queue behind answers.
    callback_workers: int = 4
    job_lease: float = 30.0
    job_poll_interval: float = 0.5
    # Done and dead jobs (dead letters included) are kept this long, then purged; 0 keeps them.
    job_retention: float = 14 * 24 * 3600.0
    # Hosts that callbacks may reach even though they resolve to non-public addresses.
    callback_allow_hosts: tuple[str, ...] = ()
    callback_allow_http: bool = False
    # Peers whose X-Forwarded-For is trusted for the client IP.
    trusted_proxies: tuple[str, ...] = ()
    use_aiohttp: bool = True
    # Answers one process streams at once (every surface); more wait in line up to the queue
    # timeout, then get 503 + Retry-After (jobs run again later).
    max_concurrent_answers: int = 1000
    answer_queue_timeout: float = 30.0
    # Open requests to Dify at once; 0 = max_concurrent_answers + 100 (stops, /info, /parameters).
    dify_max_connections: int = 0
    # An app's breaker opens after this many consecutive "app is down" failures (refused, connect
    # timeout, 5xx before any byte) and lets one trial through after the cool-down.
    dify_breaker_failures: int = 5
    dify_breaker_cool_down: float = 30.0
    # A started answer that sends only pings (or nothing) this long ends with upstream_timeout.
    dify_idle_timeout: float = 30.0
    log_level: str = "info"
    log_format: str = "text"  # or "json": one object per line
    extra: Mapping[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        # The store URL may carry a Redis password and `extra` may hold plugin secrets.
        shown = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("store", "extra")}
        scheme, sep, rest = self.store.partition("://")
        store = f"{scheme}{sep}{'***@' if '@' in rest else ''}{rest.rpartition('@')[2]}"
        parts = [f"store={store!r}", *(f"{k}={v!r}" for k, v in shown.items()), f"extra=<{len(self.extra)} values>"]
        return f"Settings({', '.join(parts)})"

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Read `GATEWAY_*` variables; unknown ones are kept in `extra` for plugins."""
        values: dict[str, object] = {}
        extra: dict[str, str] = {}
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for name, raw in environ.items():
            if not name.startswith(PREFIX):
                continue
            key = name[len(PREFIX) :].lower()
            if key not in fields or key == "extra":
                extra[key] = raw
                continue
            try:
                values[key] = _convert(key, fields[key].type, raw)
            except ValueError as exc:
                raise ConfigurationError(f"{name}: {exc}") from None
        return cls(**values, extra=extra)  # type: ignore[arg-type]

    def with_changes(self, **changes: object) -> Settings:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    @property
    def secret_keys(self) -> list[bytes]:
        return [key.get_secret_value().encode() for key in self.secret_key]

    def validate(self) -> None:
        """Refuse to run with missing, short or well-known secrets (security.md §7)."""
        if self.admin_token is None:
            raise ConfigurationError("GATEWAY_ADMIN_TOKEN is not set")
        token = self.admin_token.get_secret_value()
        if token.lower() in WELL_KNOWN_TOKENS or len(token) < MIN_SECRET_CHARS:
            raise ConfigurationError(
                f"GATEWAY_ADMIN_TOKEN must be at least {MIN_SECRET_CHARS} random characters "
                "(try: python -c 'import secrets; print(secrets.token_urlsafe(32))')"
            )
        if not self.secret_key:
            raise ConfigurationError("GATEWAY_SECRET_KEY is not set")
        for key in self.secret_key:
            if len(key.get_secret_value()) < MIN_SECRET_CHARS:
                raise ConfigurationError(
                    f"every GATEWAY_SECRET_KEY entry must be at least {MIN_SECRET_CHARS} characters"
                )
        for name in ("workers", "job_lease", "job_poll_interval"):
            if getattr(self, name) <= 0:
                raise ConfigurationError(f"GATEWAY_{name.upper()} must be positive")
        if self.callback_workers < 0:
            raise ConfigurationError("GATEWAY_CALLBACK_WORKERS can't be negative")
        if self.job_retention < 0 or self.rotation_grace < 0:
            raise ConfigurationError("GATEWAY_JOB_RETENTION and GATEWAY_ROTATION_GRACE can't be negative")
        if self.log_format not in ("text", "json"):
            raise ConfigurationError("GATEWAY_LOG_FORMAT must be text or json")
        if self.log_level.lower() not in ("critical", "error", "warning", "info", "debug", "trace"):
            raise ConfigurationError("GATEWAY_LOG_LEVEL must be one of critical, error, warning, info, debug, trace")
        if self.max_body_bytes <= 0 or self.body_timeout <= 0:
            raise ConfigurationError("GATEWAY_MAX_BODY_BYTES and GATEWAY_BODY_TIMEOUT must be positive")
        for name in ("max_concurrent_answers", "dify_breaker_failures", "dify_idle_timeout"):
            if getattr(self, name) <= 0:
                raise ConfigurationError(f"GATEWAY_{name.upper()} must be positive")
        for name in ("answer_queue_timeout", "dify_max_connections", "dify_breaker_cool_down"):
            if getattr(self, name) < 0:
                raise ConfigurationError(f"GATEWAY_{name.upper()} can't be negative")

    @property
    def dify_connections(self) -> int:
        """The size of the Dify connection pool: as set, or room for every answer plus other calls."""
        return self.dify_max_connections or self.max_concurrent_answers + 100


def _convert(key: str, annotation: object, raw: str) -> object:
    text = str(annotation)
    if key == "admin_token":
        return SecretStr(raw) if raw else None
    if key == "secret_key":
        return tuple(SecretStr(part) for part in _csv(raw))
    if text.startswith("tuple"):
        return _csv(raw)
    if text == "bool":
        return _bool(raw)
    if text == "int":
        return int(raw)
    if text == "float":
        return float(raw)
    return raw


def sqlite_path(store_url: str) -> Path | None:
    """The database file of a `sqlite:///path` store URL, or None for other stores."""
    if not store_url.startswith("sqlite:///"):
        return None
    rest = store_url[len("sqlite:///") :]
    return None if rest in {"", ":memory:"} else Path(rest)


@dataclass(frozen=True, slots=True)
class Bootstrap:
    """The settings to run with, and the admin token when it was generated just now (to print once)."""

    settings: Settings
    generated_admin_token: str | None = None


def _read_secrets(path: Path) -> dict[str, str]:
    try:
        data: dict[str, str] = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot read {path}: {exc.__class__.__name__}") from None
    return data


def _write_secrets(path: Path, stored: dict[str, str], *, first: bool) -> bool:
    """Write the secrets file (0600 from the start); False when `first` and another process won."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(stored, handle)
    try:
        if first:
            os.link(tmp, path)  # atomic, and fails if two first starts race: one file wins
        else:
            os.replace(tmp, path)
            return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)
    return True


def bootstrap(settings: Settings) -> Bootstrap:
    """Fill in a missing admin token and secret key on the embedded default, then validate.

    They are generated once and kept in `<database>.secrets` (mode 0600), so every later start
    and every CLI command on the same database uses the same ones. A Redis store is shared by
    replicas, which must agree on both: there they have to be set explicitly.
    """
    if settings.admin_token is not None and settings.secret_key:
        settings.validate()
        return Bootstrap(settings)
    db = sqlite_path(settings.store)
    if db is None:
        raise ConfigurationError(
            "GATEWAY_ADMIN_TOKEN and GATEWAY_SECRET_KEY must be set when the store is not a local SQLite file "
            "(every replica must share them)"
        )
    path = db.with_name(db.name + ".secrets") if db.suffix != ".db" else db.with_suffix(".secrets")
    generated: str | None = None
    for _ in range(3):
        existed = path.exists()
        stored = _read_secrets(path) if existed else {}
        # Generate only what is missing: a token generated beside an explicit one would never be shown.
        need_token = settings.admin_token is None and "admin_token" not in stored
        need_key = not settings.secret_key and "secret_key" not in stored
        if not (need_token or need_key):
            break
        if need_key:
            stored["secret_key"] = secrets.token_urlsafe(48)
        if need_token:
            generated = stored["admin_token"] = secrets.token_urlsafe(32)
        if _write_secrets(path, stored, first=not existed):
            break
        generated = None  # another process created the file first: use what it wrote
    else:
        raise ConfigurationError(f"{path} keeps changing under us; is another gateway starting?")
    result = settings.with_changes(
        admin_token=settings.admin_token or SecretStr(stored["admin_token"]),
        secret_key=settings.secret_key or (SecretStr(stored["secret_key"]),),
    )
    result.validate()
    return Bootstrap(result, generated if settings.admin_token is None else None)
