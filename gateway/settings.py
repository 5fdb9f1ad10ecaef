"""Settings: the only module that reads the environment.

`Settings.from_env(os.environ)` builds a frozen value; everything else receives it. Settings is a
pydantic-settings `BaseSettings`: its environment source maps `GATEWAY_` + the field name in
capitals to each field, pydantic converts and checks the values, and a bad one is a
`ConfigurationError` naming the variable. Lists are comma-separated. Building `Settings(...)`
directly never reads the environment: only `from_env` does, from the mapping it is given.

Any other `GATEWAY_*` variable is kept in `extra` for plugins and services, which declare the
names they read as `dify_gateway.settings` entry points (name = the variable without the
prefix, in lower case). A name that nothing declares is logged as a warning with the closest
known name, so a typo such as `GATEWAY_WORKRES` does not go unnoticed.

On the embedded SQLite default with no admin token or secret key set, `bootstrap()` generates
both once and keeps them in a 0600 file beside the database, so a first start needs no
configuration.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import re
import secrets
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings.sources.utils import parse_env_vars

from gateway.exceptions import ConfigurationError

__all__ = ["SETTINGS_GROUP", "Bootstrap", "Settings", "bootstrap", "environment_without_settings", "sqlite_path"]

logger = logging.getLogger(__name__)

PREFIX = "GATEWAY_"
SETTINGS_GROUP = "dify_gateway.settings"  # entry points naming the GATEWAY_* variables packages read
DEFAULT_STORE = "sqlite:///./gateway.db"
# Publicly known placeholder tokens people paste from docs; refused like LiteLLM refuses sk-1234.
WELL_KNOWN_TOKENS = frozenset({"changeme", "admin", "password", "secret", "sk-1234", "test", "token"})
MIN_SECRET_CHARS = 32
_LISTS = ("secret_key", "callback_allow_hosts", "trusted_proxies", "private_upstreams")
_FLAGS = ("log_bodies", "callback_allow_http", "use_aiohttp", "console")
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_]+")


def _csv(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


class Settings(BaseSettings):
    """Every setting of the gateway. Environment names are `GATEWAY_` + the field name in capitals."""

    model_config = SettingsConfigDict(
        env_prefix=PREFIX,
        case_sensitive=False,  # `from_env` hands over only names that start with GATEWAY_ as written
        enable_decoding=False,  # lists are comma-separated, not JSON
        frozen=True,
        extra="forbid",
        allow_inf_nan=False,  # a NaN timeout would pass every "must be positive" check
    )

    store: str = DEFAULT_STORE
    # SQLite: new jobs are committed on the event loop's thread while the file is free and such
    # commits average under this many milliseconds (else, and when 0, on the store thread).
    sqlite_inline_commit_ms: float = 2.0
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
    # Hosts and CIDRs that workspace tokens may also point Dify apps and plugin APIs at (the
    # operator may use any address; workspace admins only public ones and these).
    private_upstreams: tuple[str, ...] = ()
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
    # Seconds an idle connection to Dify is kept for reuse: below the servers' own idle timeouts
    # (uvicorn, Node: 5 s), so the gateway rarely sends on a connection the server is closing.
    dify_keepalive_expiry: float = 4.0
    # Usage, cost and budgets (gateway/usage): recording on every answer, counters kept for
    # `usage_retention` s (0: for ever), an answer's key remembered `usage_dedup_window` s.
    usage_recording: bool = True
    usage_retention: float = Field(400 * 24 * 3600.0, ge=0)
    usage_dedup_window: float = Field(7 * 24 * 3600.0, gt=0)
    usage_metrics_labels: int = Field(100, ge=1)  # distinct workspaces/apps/endpoints per /metrics label
    budget_callback_url: str | None = None  # budget.warning / budget.exceeded go here, signed with:
    budget_callback_secret: SecretStr | None = None  # a whsec_ secret
    budget_warning_share: float = Field(0.8, gt=0, lt=1)
    # Dify plugin packages: where their files go (default: beside the SQLite file, else ./data/plugins),
    # operator public keys trusted besides Dify's (PEM text or file paths), and whether unsigned
    # packages may be installed without --allow-unsigned.
    plugin_dir: str = ""
    plugin_public_keys: tuple[str, ...] = ()
    allow_unsigned_plugins: bool = False
    # Running Dify plugins: the Python >= 3.12 their venvs are made from (found when unset), where
    # the venvs go (default: `venvs/` in the plugin directory), a request's deadline, how long a
    # silent plugin (no heartbeat) is given before it is restarted, and the longest restart pause.
    plugin_python: str = ""
    plugin_venv_dir: str = ""
    plugin_request_timeout: float = 300.0
    plugin_heartbeat_timeout: float = 60.0
    plugin_restart_max: float = 60.0
    # Remote debugging of Dify plugins: the TCP address plugins connect to (off when empty; a bare
    # port listens on loopback), failed handshakes allowed per peer address a minute, and this
    # replica's URL as other replicas reach it (they forward a debugged plugin's requests there).
    plugin_debug_addr: str = ""
    plugin_debug_attempts: int = 10
    internal_url: str = ""
    log_level: str = "info"
    log_format: str = "text"  # or "json": one object per line
    # The web console at /console (gateway/console/): on by default; its sessions last this long.
    console: bool = True
    console_session_ttl: float = 8 * 3600.0
    extra: Mapping[str, str] = Field(default_factory=dict)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # `Settings(...)` takes its arguments only; the environment comes in through `from_env`.
        return (init_settings,)

    @field_validator("admin_token", mode="before")
    @classmethod
    def _empty_token_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator(*_LISTS, mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        return _csv(value) if isinstance(value, str) else value

    @field_validator(*_FLAGS, mode="before")
    @classmethod
    def _flag(cls, value: Any) -> Any:
        # pydantic reads true/false, 1/0, yes/no, on/off (any case); we also allow spaces and "" (off).
        return (value.strip() or "false") if isinstance(value, str) else value

    @field_validator("plugin_public_keys", mode="before")
    @classmethod
    def _plugin_keys(cls, value: Any) -> Any:
        return _csv(value) if isinstance(value, str) else value

    @field_validator("allow_unsigned_plugins", mode="before")
    @classmethod
    def _plugin_flag(cls, value: Any) -> Any:
        return (value.strip() or "false") if isinstance(value, str) else value

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # The store URL may carry a Redis password and `extra` may hold plugin secrets.
        scheme, sep, rest = self.store.partition("://")
        yield "store", f"{scheme}{sep}{'***@' if '@' in rest else ''}{rest.rpartition('@')[2]}"
        for name in type(self).model_fields:
            if name not in ("store", "extra"):
                yield name, getattr(self, name)
        yield "extra", f"<{len(self.extra)} values>"

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Read the `GATEWAY_*` variables of `environ`; the ones that are not settings of the
        gateway go to `extra` (for plugins), with a warning for each that no package declares.

        Raises:
            ConfigurationError: a value that does not fit its setting, naming the variable.
        """
        ours = {name: value for name, value in environ.items() if name.startswith(PREFIX)}
        fields = [name for name in cls.model_fields if name != "extra"]
        known = {name for name in ours if name[len(PREFIX) :].lower() in fields}
        extra = {name[len(PREFIX) :].lower(): value for name, value in ours.items() if name not in known}
        if extra:
            _warn_undeclared([name for name in ours if name not in known], fields)
        values = _Variables(cls, {name: ours[name] for name in known})()
        try:
            return cls(**values, extra=extra)
        except ValidationError as exc:
            raise ConfigurationError(_describe(exc)) from None

    def with_changes(self, **changes: object) -> Settings:
        """A copy with `changes` applied and checked like the environment's values."""
        try:
            return type(self).model_validate({**dict(self), **changes})
        except ValidationError as exc:
            raise ConfigurationError(_describe(exc)) from None

    @property
    def secret_keys(self) -> list[bytes]:
        return [key.get_secret_value().encode() for key in self.secret_key]

    def validate(self) -> None:  # type: ignore[override]  # pydantic v1's deprecated classmethod
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
        if self.console_session_ttl <= 0:
            raise ConfigurationError("GATEWAY_CONSOLE_SESSION_TTL must be positive")
        if self.log_format not in ("text", "json"):
            raise ConfigurationError("GATEWAY_LOG_FORMAT must be text or json")
        if self.log_level.lower() not in ("critical", "error", "warning", "info", "debug", "trace"):
            raise ConfigurationError("GATEWAY_LOG_LEVEL must be one of critical, error, warning, info, debug, trace")
        if self.max_body_bytes <= 0 or self.body_timeout <= 0:
            raise ConfigurationError("GATEWAY_MAX_BODY_BYTES and GATEWAY_BODY_TIMEOUT must be positive")
        for name in ("max_concurrent_answers", "dify_breaker_failures", "dify_idle_timeout"):
            if getattr(self, name) <= 0:
                raise ConfigurationError(f"GATEWAY_{name.upper()} must be positive")
        for name in (
            "answer_queue_timeout",
            "dify_max_connections",
            "dify_breaker_cool_down",
            "sqlite_inline_commit_ms",
        ):
            if getattr(self, name) < 0:
                raise ConfigurationError(f"GATEWAY_{name.upper()} can't be negative")
        if self.dify_keepalive_expiry <= 0:
            raise ConfigurationError("GATEWAY_DIFY_KEEPALIVE_EXPIRY must be positive")
        if self.budget_callback_url and self.budget_callback_secret is None:
            raise ConfigurationError("GATEWAY_BUDGET_CALLBACK_URL needs GATEWAY_BUDGET_CALLBACK_SECRET (whsec_...)")
        for name in ("plugin_request_timeout", "plugin_heartbeat_timeout", "plugin_restart_max"):
            if getattr(self, name) <= 0:
                raise ConfigurationError(f"GATEWAY_{name.upper()} must be positive")
        self.plugin_debug_address  # noqa: B018 - raises ConfigurationError when malformed
        if self.plugin_debug_attempts <= 0:
            raise ConfigurationError("GATEWAY_PLUGIN_DEBUG_ATTEMPTS must be positive")
        if self.internal_url and not self.internal_url.startswith(("http://", "https://")):
            raise ConfigurationError("GATEWAY_INTERNAL_URL must be an http:// or https:// URL")

    @property
    def sqlite_inline_budget(self) -> float | None:
        """`sqlite_inline_commit_ms` in seconds; None when off (0)."""
        return self.sqlite_inline_commit_ms / 1000 if self.sqlite_inline_commit_ms > 0 else None

    @property
    def plugin_debug_address(self) -> tuple[str, int] | None:
        """GATEWAY_PLUGIN_DEBUG_ADDR as (host, port): `5003` or `:5003` is 127.0.0.1:5003; None when off."""
        text = self.plugin_debug_addr.strip()
        if not text:
            return None
        host, sep, port = text.rpartition(":")
        host = host.strip("[]") if sep else ""
        if not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ConfigurationError("GATEWAY_PLUGIN_DEBUG_ADDR must be PORT, :PORT or HOST:PORT")
        return host or "127.0.0.1", int(port)

    @property
    def plugin_directory(self) -> Path:
        """GATEWAY_PLUGIN_DIR, or `plugins/` beside the SQLite database, or `./data/plugins`."""
        if self.plugin_dir:
            return Path(self.plugin_dir)
        db = sqlite_path(self.store)
        return db.parent / "plugins" if db is not None else Path("data") / "plugins"

    @property
    def plugin_venv_directory(self) -> Path:
        """GATEWAY_PLUGIN_VENV_DIR, or `venvs/` in the plugin directory."""
        return Path(self.plugin_venv_dir) if self.plugin_venv_dir else self.plugin_directory / "venvs"

    @property
    def dify_connections(self) -> int:
        """The size of the Dify connection pool: as set, or room for every answer plus other calls."""
        return self.dify_max_connections or self.max_concurrent_answers + 100


class _Variables(EnvSettingsSource):
    """pydantic-settings' environment source, over a given mapping instead of `os.environ`."""

    def __init__(self, settings_cls: type[BaseSettings], variables: Mapping[str, str]) -> None:
        self._variables = variables
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(self._variables, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str)


def _describe(error: ValidationError) -> str:
    """Each problem as `GATEWAY_NAME: what is wrong`; the value is shown only for numbers and flags."""
    problems = []
    for item in error.errors(include_url=False):
        field = str(item["loc"][0]) if item["loc"] else ""
        info: FieldInfo | None = Settings.model_fields.get(field)
        message = item["msg"]
        if info is not None and info.annotation in (int, float, bool) and isinstance(item.get("input"), str):
            message += f" (got {item['input'][:40]!r})"
        problems.append(f"{PREFIX}{field.upper()}: {message}")
    return "; ".join(problems)


def _warn_undeclared(names: Iterable[str], fields: list[str]) -> None:
    """Log each variable no installed package declares, with the closest known name if any."""
    declared = {entry.name.lower() for entry in entry_points(group=SETTINGS_GROUP)}
    choices = [*fields, *sorted(declared)]
    for name in sorted(names):
        key = name[len(PREFIX) :].lower()
        if key in declared:
            continue
        shown = name if _PLAIN_NAME.fullmatch(name) else repr(name)
        close = difflib.get_close_matches(key, choices, n=1)  # without the prefix, which all share
        hint = f"; did you mean {PREFIX}{close[0].upper()}?" if close else ""
        logger.warning("%s is not a setting of the gateway or of an installed plugin%s", shown, hint)


# What a process the gateway runs for a plugin needs to reach the outside: the proxy and the CA bundle
# (Dify's daemon hands its plugins HTTP_PROXY, HTTPS_PROXY and NO_PROXY the same way).
OUTBOUND_VARIABLES = frozenset(
    {
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "ALL_PROXY",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
    }
)


def outbound_environment() -> dict[str, str]:
    """The proxy and CA variables of this process's environment (either case), for plugin processes,
    whose environment is otherwise built from nothing (none of the gateway's secrets)."""
    return {name: value for name, value in os.environ.items() if name.upper() in OUTBOUND_VARIABLES}


def environment_without_settings() -> dict[str, str]:
    """This process's environment minus every `GATEWAY_*` variable (the admin token, the secret
    keys, the store URL): for tools the gateway runs on others' behalf (pip installing a plugin's
    requirements), which need the proxy and pip settings but none of the gateway's secrets."""
    return {name: value for name, value in os.environ.items() if not name.upper().startswith(PREFIX)}


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


def reference_variables() -> dict[str, str]:
    """The environment, for the `${VAR}` references of a configuration file (`dify-gateway apply`):
    read here, like every other reach into the environment, and handed to the command. The
    gateway's own settings are left out: `${GATEWAY_ADMIN_TOKEN}` as an app key would send the
    token to whatever base URL the file names."""
    own = {PREFIX + name.upper() for name in Settings.model_fields}
    return {name: value for name, value in os.environ.items() if name.upper() not in own}
