"""Settings: parsing GATEWAY_* variables, refusing weak secrets, and the first-start bootstrap."""

from __future__ import annotations

import json
import logging
import re
import stat
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from gateway.exceptions import ConfigurationError
from gateway.settings import DEFAULT_STORE, WELL_KNOWN_TOKENS, Settings, bootstrap, sqlite_path

TOKEN = "T" * 40
KEY = "K" * 48
OLD_KEY = "O" * 48


def valid(**changes: object) -> Settings:
    return Settings(admin_token=SecretStr(TOKEN), secret_key=(SecretStr(KEY),)).with_changes(**changes)


def sqlite(tmp_path: Path, name: str = "gw.db") -> str:
    return f"sqlite:///{tmp_path / name}"


# -- from_env ---------------------------------------------------------------------------------------


def test_defaults_without_any_variable() -> None:
    settings = Settings.from_env({"HOME": "/root", "PATH": "/bin"})
    assert settings == Settings()
    assert settings.store == DEFAULT_STORE
    assert settings.admin_token is None
    assert settings.secret_key == ()
    assert settings.extra == {}


def test_typed_values_are_parsed() -> None:
    settings = Settings.from_env(
        {
            "GATEWAY_STORE": "redis://localhost:6379/0",
            "GATEWAY_PUBLIC_URL": "https://gw.example.com",
            "GATEWAY_PORT": "9000",
            "GATEWAY_MAX_BODY_BYTES": "2048",
            "GATEWAY_BODY_TIMEOUT": "2.5",
            "GATEWAY_ROTATION_GRACE": "60",
            "GATEWAY_LOG_BODIES": "yes",
            "GATEWAY_USE_AIOHTTP": "off",
            "GATEWAY_CALLBACK_ALLOW_HOSTS": " dify.internal , ,hooks.local,",
            "GATEWAY_TRUSTED_PROXIES": "10.0.0.1",
            "GATEWAY_LOG_LEVEL": "debug",
            "GATEWAY_LOG_FORMAT": "json",
        }
    )
    assert settings.log_format == "json"
    assert settings.store == "redis://localhost:6379/0"
    assert settings.public_url == "https://gw.example.com"
    assert settings.port == 9000
    assert isinstance(settings.port, int)
    assert settings.max_body_bytes == 2048
    assert settings.body_timeout == 2.5
    assert settings.rotation_grace == 60.0
    assert isinstance(settings.rotation_grace, float)
    assert settings.log_bodies is True
    assert settings.use_aiohttp is False
    assert settings.callback_allow_hosts == ("dify.internal", "hooks.local")
    assert settings.trusted_proxies == ("10.0.0.1",)
    assert settings.log_level == "debug"
    assert settings.extra == {}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1", True), ("true", True), ("TRUE", True), (" on ", True), ("yes", True)]
    + [("0", False), ("false", False), ("No", False), ("off", False), ("", False)],
)
def test_booleans(raw: str, expected: bool) -> None:
    assert Settings.from_env({"GATEWAY_LOG_BODIES": raw}).log_bodies is expected


def test_an_empty_csv_is_an_empty_tuple() -> None:
    assert Settings.from_env({"GATEWAY_TRUSTED_PROXIES": ""}).trusted_proxies == ()


def test_secret_keys_are_a_list_for_rotation() -> None:
    settings = Settings.from_env({"GATEWAY_SECRET_KEY": f"{OLD_KEY}, {KEY}", "GATEWAY_ADMIN_TOKEN": TOKEN})
    assert all(isinstance(k, SecretStr) for k in settings.secret_key)
    assert [k.get_secret_value() for k in settings.secret_key] == [OLD_KEY, KEY]  # oldest to newest
    assert settings.secret_keys == [OLD_KEY.encode(), KEY.encode()]
    assert isinstance(settings.admin_token, SecretStr)
    assert settings.admin_token.get_secret_value() == TOKEN
    settings.validate()


def test_an_empty_admin_token_counts_as_unset() -> None:
    assert Settings.from_env({"GATEWAY_ADMIN_TOKEN": ""}).admin_token is None


def test_unknown_gateway_variables_are_kept_in_extra() -> None:
    settings = Settings.from_env(
        {"GATEWAY_SLACK_SIGNING_SECRET": "abc", "GATEWAY_EXTRA": "x", "OTHER_PORT": "nope", "gateway_port": "1"}
    )
    assert settings.extra == {"slack_signing_secret": "abc", "extra": "x"}
    assert settings.port == 8000  # names are case-sensitive: only GATEWAY_ in capitals counts


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("GATEWAY_PORT", "eighty"),
        ("GATEWAY_PORT", "80.5"),
        ("GATEWAY_WORKERS", ""),
        ("GATEWAY_BODY_TIMEOUT", "soon"),
        ("GATEWAY_LOG_BODIES", "maybe"),
        ("GATEWAY_CALLBACK_ALLOW_HTTP", "2"),
        ("GATEWAY_BODY_TIMEOUT", "nan"),
    ],
)
def test_a_bad_value_names_the_variable(name: str, raw: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        Settings.from_env({name: raw})
    assert info.value.message.startswith(f"{name}: ")
    assert f"(got {raw!r})" in info.value.message


def test_building_settings_never_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_PORT", "1234")
    assert Settings().port == 8000
    assert Settings.from_env({}).port == 8000


def test_changes_are_checked_like_variables() -> None:
    assert valid().with_changes(port="9000").port == 9000
    with pytest.raises(ConfigurationError, match="^GATEWAY_PORT: "):
        valid().with_changes(port="eighty")
    with pytest.raises(ConfigurationError, match="GATEWAY_PROT"):
        valid().with_changes(prot=1)


# -- unknown variables ------------------------------------------------------------------------------


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "gateway.settings" and r.levelno == logging.WARNING]


def test_a_misspelt_variable_is_a_warning_with_a_suggestion(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "gateway.settings")
    settings = Settings.from_env({"GATEWAY_WORKRES": "16", "GATEWAY_SECRET_KYE": KEY, "GATEWAY_PORT": "9000"})
    assert settings.workers == 8  # the typo still changes nothing...
    assert warnings_of(caplog) == [  # ...but it is said, once per variable, and never with its value
        "GATEWAY_SECRET_KYE is not a setting of the gateway or of an installed plugin; "
        "did you mean GATEWAY_SECRET_KEY?",
        "GATEWAY_WORKRES is not a setting of the gateway or of an installed plugin; did you mean GATEWAY_WORKERS?",
    ]
    assert KEY not in caplog.text


def test_an_unknown_variable_without_a_close_name(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "gateway.settings")
    Settings.from_env({"GATEWAY_QWERTYUIOP": "1", "GATEWAY_\nFORGED": "x"})
    assert warnings_of(caplog) == [
        "'GATEWAY_\\nFORGED' is not a setting of the gateway or of an installed plugin",
        "GATEWAY_QWERTYUIOP is not a setting of the gateway or of an installed plugin",
    ]


def test_known_and_declared_variables_are_not_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "gateway.settings")
    environ = {"GATEWAY_WORKERS": "2", "GATEWAY_DISCORD_BOT_ENDPOINTS": "ep_1", "HOME": "/root", "GATEWAYS": "x"}
    settings = Settings.from_env(environ)  # the bot's variable is declared in this package's entry points
    assert settings.extra == {"discord_bot_endpoints": "ep_1"}
    assert warnings_of(caplog) == []


def test_settings_are_frozen_and_changed_by_copy() -> None:
    settings = valid()
    changed = settings.with_changes(port=1234)
    assert changed.port == 1234
    assert settings.port == 8000
    with pytest.raises(ValidationError, match="frozen"):
        settings.port = 1  # type: ignore[misc]


# -- validate ---------------------------------------------------------------------------------------


def test_valid_settings_pass() -> None:
    valid().validate()


@pytest.mark.parametrize(
    ("settings", "mentions"),
    [
        pytest.param(valid(admin_token=None), "GATEWAY_ADMIN_TOKEN", id="no-token"),
        pytest.param(valid(admin_token=SecretStr("short-" + "x" * 10)), "GATEWAY_ADMIN_TOKEN", id="short-token"),
        pytest.param(valid(secret_key=()), "GATEWAY_SECRET_KEY", id="no-key"),
        pytest.param(valid(secret_key=(SecretStr("k" * 31),)), "GATEWAY_SECRET_KEY", id="short-key"),
        pytest.param(valid(secret_key=(SecretStr("short"), SecretStr(KEY))), "GATEWAY_SECRET_KEY", id="one-short-key"),
        pytest.param(valid(max_body_bytes=0), "GATEWAY_MAX_BODY_BYTES", id="zero-body"),
        pytest.param(valid(body_timeout=-1.0), "GATEWAY_BODY_TIMEOUT", id="negative-timeout"),
        pytest.param(valid(log_format="xml"), "GATEWAY_LOG_FORMAT", id="log-format"),
        pytest.param(valid(log_level="loud"), "GATEWAY_LOG_LEVEL", id="log-level"),
        pytest.param(valid(sqlite_inline_commit_ms=-1), "GATEWAY_SQLITE_INLINE_COMMIT_MS", id="inline-commit"),
    ],
)
def test_validate_refuses(settings: Settings, mentions: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        settings.validate()
    assert mentions in info.value.message
    assert TOKEN not in info.value.message
    assert KEY not in info.value.message


@pytest.mark.parametrize("token", sorted(WELL_KNOWN_TOKENS) + ["CHANGEME", "sk-1234"])
def test_validate_refuses_well_known_tokens(token: str) -> None:
    with pytest.raises(ConfigurationError, match="GATEWAY_ADMIN_TOKEN"):
        valid(admin_token=SecretStr(token)).validate()


def test_a_32_character_token_is_enough() -> None:
    valid(admin_token=SecretStr("x" * 32), secret_key=(SecretStr("y" * 32),)).validate()
    with pytest.raises(ConfigurationError):
        valid(admin_token=SecretStr("x" * 31)).validate()


# -- repr -------------------------------------------------------------------------------------------


def test_repr_never_shows_the_secrets() -> None:
    settings = Settings.from_env(
        {
            "GATEWAY_ADMIN_TOKEN": TOKEN,
            "GATEWAY_SECRET_KEY": f"{OLD_KEY},{KEY}",
            "GATEWAY_STORE": "redis://:hunter2@redis:6379/0",
        }
    )
    for text in (repr(settings), str(settings), f"{settings}"):
        assert "hunter2" not in text and "redis://***@redis:6379/0" in text
    for text in (repr(settings), str(settings), f"{settings}", repr(settings.secret_key)):
        assert TOKEN not in text
        assert KEY not in text
        assert OLD_KEY not in text
        assert "K" * 8 not in text


# -- sqlite_path ------------------------------------------------------------------------------------


def test_sqlite_path() -> None:
    assert sqlite_path("sqlite:///./gateway.db") == Path("./gateway.db")
    assert sqlite_path("sqlite:////var/lib/gw.db") == Path("/var/lib/gw.db")
    assert sqlite_path("sqlite:///:memory:") is None
    assert sqlite_path("sqlite:///") is None
    assert sqlite_path("redis://localhost") is None


# -- bootstrap --------------------------------------------------------------------------------------


def test_bootstrap_generates_secrets_once_into_a_private_file(tmp_path: Path) -> None:
    settings = Settings(store=sqlite(tmp_path))
    first = bootstrap(settings)
    assert first.generated_admin_token is not None
    assert first.settings.admin_token is not None
    assert first.settings.admin_token.get_secret_value() == first.generated_admin_token
    assert len(first.settings.secret_key) == 1
    first.settings.validate()

    path = tmp_path / "gw.secrets"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    stored = json.loads(path.read_text())
    assert stored["admin_token"] == first.generated_admin_token
    assert stored["secret_key"] == first.settings.secret_key[0].get_secret_value()

    # The second start reuses them and has nothing new to show.
    second = bootstrap(settings)
    assert second.generated_admin_token is None
    assert second.settings == first.settings
    assert json.loads(path.read_text()) == stored


def test_bootstrap_names_the_file_after_a_database_without_db_suffix(tmp_path: Path) -> None:
    bootstrap(Settings(store=sqlite(tmp_path, "state.sqlite")))
    assert (tmp_path / "state.sqlite.secrets").exists()


def test_bootstrap_creates_the_database_directory(tmp_path: Path) -> None:
    boot = bootstrap(Settings(store=sqlite(tmp_path / "a" / "b")))
    assert boot.generated_admin_token
    assert stat.S_IMODE((tmp_path / "a" / "b" / "gw.secrets").stat().st_mode) == 0o600


def test_bootstrap_tightens_an_existing_loose_file(tmp_path: Path) -> None:
    path = tmp_path / "gw.secrets"
    path.write_text(json.dumps({"secret_key": KEY}))
    path.chmod(0o644)
    boot = bootstrap(Settings(store=sqlite(tmp_path)))
    assert boot.generated_admin_token
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [k.get_secret_value() for k in boot.settings.secret_key] == [KEY]  # the stored key is kept


def test_explicit_values_win_over_the_file(tmp_path: Path) -> None:
    generated = bootstrap(Settings(store=sqlite(tmp_path)))
    explicit = Settings(store=sqlite(tmp_path), admin_token=SecretStr(TOKEN), secret_key=(SecretStr(KEY),))
    boot = bootstrap(explicit)
    assert boot.generated_admin_token is None
    assert boot.settings == explicit

    only_token = bootstrap(Settings(store=sqlite(tmp_path), admin_token=SecretStr(TOKEN)))
    assert only_token.generated_admin_token is None
    assert only_token.settings.admin_token == SecretStr(TOKEN)
    assert only_token.settings.secret_key == generated.settings.secret_key

    only_key = bootstrap(Settings(store=sqlite(tmp_path), secret_key=(SecretStr(KEY),)))
    assert only_key.generated_admin_token is None
    assert only_key.settings.admin_token == generated.settings.admin_token
    assert only_key.settings.secret_key == (SecretStr(KEY),)


def test_an_explicit_token_is_not_shadowed_by_an_unseen_generated_one(tmp_path: Path) -> None:
    """With the token set explicitly, none is generated; dropping it later generates one and shows it."""
    bootstrap(Settings(store=sqlite(tmp_path), admin_token=SecretStr(TOKEN)))
    assert "admin_token" not in json.loads((tmp_path / "gw.secrets").read_text())
    later = bootstrap(Settings(store=sqlite(tmp_path)))
    assert later.generated_admin_token is not None
    assert later.settings.admin_token == SecretStr(later.generated_admin_token)


def test_bootstrap_still_validates_explicit_values(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="GATEWAY_ADMIN_TOKEN"):
        bootstrap(Settings(store=sqlite(tmp_path), admin_token=SecretStr("changeme")))
    with pytest.raises(ConfigurationError, match="GATEWAY_SECRET_KEY"):
        bootstrap(Settings(store="redis://x", admin_token=SecretStr(TOKEN), secret_key=(SecretStr("short"),)))


def test_bootstrap_with_everything_set_touches_no_file(tmp_path: Path) -> None:
    settings = valid(store=sqlite(tmp_path))
    assert bootstrap(settings).settings is settings
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "settings",
    [
        Settings(store="redis://localhost:6379/0"),
        Settings(store="redis://localhost:6379/0", admin_token=SecretStr(TOKEN)),
        Settings(store="redis://localhost:6379/0", secret_key=(SecretStr(KEY),)),
        Settings(store="sqlite:///:memory:"),
    ],
)
def test_a_shared_store_without_secrets_is_refused(settings: Settings) -> None:
    with pytest.raises(ConfigurationError) as info:
        bootstrap(settings)
    assert "GATEWAY_ADMIN_TOKEN" in info.value.message
    assert "GATEWAY_SECRET_KEY" in info.value.message


def test_a_redis_store_with_both_secrets_is_accepted() -> None:
    settings = valid(store="redis://localhost:6379/0")
    boot = bootstrap(settings)
    assert boot.settings is settings
    assert boot.generated_admin_token is None


def test_an_unreadable_secrets_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "gw.secrets").write_text("{not json")
    with pytest.raises(ConfigurationError, match="gw.secrets"):
        bootstrap(Settings(store=sqlite(tmp_path)))


@pytest.mark.parametrize("name", ["workers", "job_lease", "job_poll_interval"])
def test_job_settings_must_be_positive(name: str) -> None:
    settings = Settings(admin_token=SecretStr("a" * 40), secret_key=(SecretStr("k" * 40),)).with_changes(**{name: 0})
    with pytest.raises(ConfigurationError, match=name.upper()):
        settings.validate()


def test_retention_and_grace_cant_be_negative() -> None:
    settings = Settings(admin_token=SecretStr("a" * 40), secret_key=(SecretStr("k" * 40),))
    for name in ("job_retention", "rotation_grace"):
        with pytest.raises(ConfigurationError):
            settings.with_changes(**{name: -1}).validate()


def test_two_first_starts_racing_agree_on_one_set_of_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The loser of the race to create the file uses what the winner wrote."""
    settings = Settings(store=f"sqlite:///{tmp_path / 'gw.db'}")
    winner = bootstrap(settings)
    real_exists = Path.exists
    looked: list[Path] = []

    def stale_once(self: Path) -> bool:
        # The second start looked before the first one wrote: it believes it is first.
        if self.suffix == ".secrets" and not looked:
            looked.append(self)
            return False
        return real_exists(self)

    monkeypatch.setattr(Path, "exists", stale_once)
    loser = bootstrap(settings)
    monkeypatch.undo()
    assert looked  # the race really was run
    assert loser.settings.admin_token is not None and winner.settings.admin_token is not None
    assert loser.settings.admin_token.get_secret_value() == winner.settings.admin_token.get_secret_value()
    assert loser.settings.secret_keys == winner.settings.secret_keys
    assert loser.generated_admin_token is None  # never print a token that isn't the one in use
    assert [p.name for p in tmp_path.iterdir()] == ["gw.secrets"]  # no temporary files left


def test_capacity_and_breaker_settings() -> None:
    settings = Settings.from_env(
        {
            "GATEWAY_MAX_CONCURRENT_ANSWERS": "50",
            "GATEWAY_DIFY_BREAKER_FAILURES": "2",
            "GATEWAY_DIFY_IDLE_TIMEOUT": "12",
        }
    )
    assert (settings.max_concurrent_answers, settings.dify_breaker_failures, settings.dify_idle_timeout) == (50, 2, 12)
    assert settings.dify_connections == 150  # room for every answer, plus stops and metadata calls
    assert settings.with_changes(dify_max_connections=70).dify_connections == 70
    wrong = {"max_concurrent_answers": 0, "dify_breaker_failures": 0, "dify_idle_timeout": 0,
             "answer_queue_timeout": -1, "dify_max_connections": -1, "dify_breaker_cool_down": -1}  # fmt: skip
    for name, value in wrong.items():
        with pytest.raises(ConfigurationError, match=f"GATEWAY_{name.upper()}"):
            valid(**{name: value}).validate()


def test_dify_keepalive_expiry_setting() -> None:
    assert Settings.from_env({}).dify_keepalive_expiry == 4.0  # below uvicorn's and Node's 5 s
    assert Settings.from_env({"GATEWAY_DIFY_KEEPALIVE_EXPIRY": "1.5"}).dify_keepalive_expiry == 1.5
    for value in (0, -1):
        with pytest.raises(ConfigurationError, match="GATEWAY_DIFY_KEEPALIVE_EXPIRY"):
            valid(dify_keepalive_expiry=value).validate()


# -- the README's Configuration table ---------------------------------------------------------------


def test_readme_configuration_table_lists_every_setting_and_nothing_else() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    table = readme.split("## Configuration", 1)[1].split("\n\n", 2)[2].split("\n\n", 1)[0]
    rows = [line.split("|")[1] for line in table.splitlines() if line.startswith("| `GATEWAY_")]
    documented = {name.lower() for row in rows for name in re.findall(r"`GATEWAY_([A-Z_]+)`", row)}
    fields = set(Settings.model_fields) - {"extra"}  # `extra`: the variables handed to plugins
    assert documented == fields
