"""Settings from the environment and action types from TOML: safe defaults, clear refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from scoreboard.config import Settings, SettingsError, load_action_types
from scoreboard.domain.actions import ActionCatalog, ActionPolicy, ActionType


def test_defaults_match_the_documented_settings_table() -> None:
    settings = Settings.from_env({})

    assert settings.database_url == "sqlite:///./scoreboard.db"
    assert settings.redis_url is None
    assert settings.broker_url is None
    assert settings.jwt_secret is None
    assert settings.jwt_algorithm is None  # HS256 with a secret, else what the key file's key signs
    assert settings.jwt_jwks_url is None
    assert settings.jwt_jwks_file is None
    assert settings.jwt_issuer == "scoreboard"
    assert settings.jwt_audience == "scoreboard"
    assert settings.access_token_ttl_seconds == 900
    assert settings.action_policy is ActionPolicy.TICKETED
    assert settings.action_types_file is None
    assert settings.rate_limit_score_updates == "10/second;300/minute"
    assert settings.rate_limit_login == "5/minute"
    assert settings.allowed_origins == ()
    assert settings.public_scoreboard is True
    assert settings.log_format in {"console", "json"}


def test_default_action_catalog_is_one_point_default_type() -> None:
    assert Settings.from_env({}).action_catalog() == ActionCatalog.default()
    assert ActionCatalog.default().get("default") == ActionType("default", points=1)


def test_values_are_read_from_prefixed_variables() -> None:
    settings = Settings.from_env(
        {
            "SCOREBOARD_DATABASE_URL": "postgresql://app@127.0.0.1:5432/scores",
            "SCOREBOARD_REDIS_URL": "redis://127.0.0.1:6379/0",
            "SCOREBOARD_JWT_ISSUER": "issuer.example",
            "SCOREBOARD_ACCESS_TOKEN_TTL_SECONDS": " 60 ",
            "SCOREBOARD_ACTION_POLICY": "OPEN",
            "SCOREBOARD_RATE_LIMIT_LOGIN": "off",
            "SCOREBOARD_ALLOWED_ORIGINS": "https://a.example/, http://b.example:8000,,",
            "SCOREBOARD_PUBLIC_SCOREBOARD": "no",
            "SCOREBOARD_ACTION_TYPES_FILE": "/etc/scoreboard/actions.toml",
            "SCOREBOARD_LOG_FORMAT": "json",
            "DATABASE_URL": "sqlite:///ignored-without-the-prefix.db",
        }
    )

    assert settings.database_url == "postgresql://app@127.0.0.1:5432/scores"
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.jwt_issuer == "issuer.example"
    assert settings.access_token_ttl_seconds == 60
    assert settings.action_policy is ActionPolicy.OPEN
    assert settings.rate_limit_login == "off"
    assert settings.allowed_origins == ("https://a.example", "http://b.example:8000")
    assert settings.public_scoreboard is False
    assert settings.action_types_file == Path("/etc/scoreboard/actions.toml")
    assert settings.log_format == "json"


@pytest.mark.parametrize("raw", ["1", "true", "TRUE", "yes", "on"])
def test_true_spellings(raw: str) -> None:
    assert Settings.from_env({"SCOREBOARD_PUBLIC_SCOREBOARD": raw}).public_scoreboard is True


@pytest.mark.parametrize("raw", ["0", "false", "False", "no", "off"])
def test_false_spellings(raw: str) -> None:
    assert Settings.from_env({"SCOREBOARD_PUBLIC_SCOREBOARD": raw}).public_scoreboard is False


def test_blank_value_means_the_default() -> None:
    settings = Settings.from_env({"SCOREBOARD_ACCESS_TOKEN_TTL_SECONDS": "  ", "SCOREBOARD_DATABASE_URL": ""})

    assert settings.access_token_ttl_seconds == 900
    assert settings.database_url == "sqlite:///./scoreboard.db"


@pytest.mark.parametrize(
    ("variable", "raw", "expected"),
    [
        ("SCOREBOARD_ACCESS_TOKEN_TTL_SECONDS", "fifteen", "expected a whole number"),
        ("SCOREBOARD_ACCESS_TOKEN_TTL_SECONDS", "1.5", "expected a whole number"),
        ("SCOREBOARD_ACCESS_TOKEN_TTL_SECONDS", "29", "must be at least 30"),
        ("SCOREBOARD_MAX_BODY_BYTES", "4k", "expected a whole number"),
        ("SCOREBOARD_PUBLIC_SCOREBOARD", "maybe", "expected true or false"),
        ("SCOREBOARD_ACTION_POLICY", "closed", "expected ticketed or open"),
        ("SCOREBOARD_DATABASE_URL", "mysql://db/scores", "expected sqlite:///path or postgresql://"),
        ("SCOREBOARD_ROLE", "worker", "expected one of all, api, realtime, relay"),
        ("SCOREBOARD_TRUSTED_PROXIES", "10.0.0.1,proxy.local", "'proxy.local' is not an IP address"),
        ("SCOREBOARD_WS_MAX_CONNECTIONS", "0", "must be at least 1"),
        ("SCOREBOARD_WS_MAX_CONNECTIONS_PER_ADDRESS", "-5", "must be at least 1"),
        ("SCOREBOARD_WS_PING_INTERVAL_SECONDS", "soon", "expected a number"),
        ("SCOREBOARD_WS_PING_TIMEOUT_SECONDS", "0", "positive number of seconds"),
        ("SCOREBOARD_WS_IDLE_TIMEOUT_SECONDS", "inf", "positive number of seconds"),
        ("SCOREBOARD_LOG_FORMAT", "xml", "expected console, json or cloudwatch"),
        ("SCOREBOARD_SENTRY_DSN", "sentry.example.com/1", "expected https://<key>@<host>/<project id>"),
        (
            "SCOREBOARD_SENTRY_DSN",
            "https://sentry.example.com/1",
            "expected https://<key>@<host>/<project id>",
        ),
        ("SCOREBOARD_OTEL_ENDPOINT", "collector:4318", "expected an OTLP/HTTP URL"),
    ],
)
def test_bad_value_names_the_variable(variable: str, raw: str, expected: str) -> None:
    with pytest.raises(SettingsError, match=expected) as refused:
        Settings.from_env({variable: raw})

    assert variable in str(refused.value)


def test_websocket_limits_accept_fractions_of_a_second() -> None:
    settings = Settings.from_env(
        {"SCOREBOARD_WS_PING_INTERVAL_SECONDS": "0.5", "SCOREBOARD_WS_MAX_CONNECTIONS": "7"}
    )

    assert (settings.ws_ping_interval_seconds, settings.ws_max_connections) == (0.5, 7)


def test_read_url_is_refused_with_sqlite_because_it_has_no_replicas() -> None:
    with pytest.raises(SettingsError, match="SQLite, which has no read replicas") as refused:
        Settings.from_env({"SCOREBOARD_DATABASE_READ_URL": "postgresql://replica/scores"})

    assert "SCOREBOARD_DATABASE_READ_URL" in str(refused.value)


def test_read_url_must_be_postgresql_and_keeps_its_password_out_of_the_error() -> None:
    environ = {
        "SCOREBOARD_DATABASE_URL": "postgresql://primary/scores",
        "SCOREBOARD_DATABASE_READ_URL": "mysql://me:hunter2@replica/scores",
    }
    with pytest.raises(SettingsError, match="expected postgresql://") as refused:
        Settings.from_env(environ)

    assert "hunter2" not in str(refused.value)


def test_read_url_is_kept_beside_a_postgresql_primary() -> None:
    environ = {
        "SCOREBOARD_DATABASE_URL": "postgresql://primary/scores",
        "SCOREBOARD_DATABASE_READ_URL": "postgresql://replica/scores",
    }
    assert Settings.from_env(environ).database_read_url == "postgresql://replica/scores"


def test_settings_error_is_a_value_error() -> None:
    assert issubclass(SettingsError, ValueError)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "actions.toml"
    path.write_text(text, "utf-8")
    return path


def test_action_types_file_is_loaded(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [action_types.default]
        points = 1

        [action_types.quiz]
        points = 5
        ttl_seconds = 120
        min_seconds = 30
        per_user_per_hour = 10
        """,
    )

    catalog = load_action_types(path)

    assert catalog.types == {
        "default": ActionType("default", points=1),
        "quiz": ActionType("quiz", points=5, ttl_seconds=120, min_seconds=30, per_user_per_hour=10),
    }
    assert Settings(action_types_file=path).action_catalog() == catalog


def test_action_types_file_refuses_unknown_keys(tmp_path: Path) -> None:
    path = write(tmp_path, "[action_types.quiz]\npoints = 5\nbonus = 2\n")

    with pytest.raises(SettingsError, match=r"'quiz' has unknown keys \['bonus'\]"):
        load_action_types(path)


def test_action_type_that_is_not_a_table_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="not a table"):
        load_action_types(write(tmp_path, "[action_types]\nquiz = 5\n"))


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ("points = 0", "points must be > 0"),
        ("points = -2", "points must be > 0"),
        ("ttl_seconds = 0", "ttl_seconds must be > 0"),
        ("ttl_seconds = 10\nmin_seconds = 10", "min_seconds must be in"),
        ("per_user_per_hour = 0", "per_user_per_hour must be > 0"),
        ('points = "5"', "points must be a whole number"),
        ("points = 1.5", "points must be a whole number"),
        ("points = true", "points must be a whole number"),
        ("ttl_seconds = 60.5", "ttl_seconds must be a whole number"),
    ],
)
def test_action_types_file_refuses_bad_values(tmp_path: Path, table: str, expected: str) -> None:
    path = write(tmp_path, f"[action_types.quiz]\n{table}\n")

    with pytest.raises(SettingsError, match=expected) as refused:
        load_action_types(path)

    assert str(path) in str(refused.value)


@pytest.mark.parametrize("text", ["", "[other]\nx = 1\n", "action_types = 3\n", "[action_types]\n"])
def test_action_types_file_needs_an_action_types_table(tmp_path: Path, text: str) -> None:
    with pytest.raises(SettingsError, match=r"expected at least one \[action_types.NAME\] table"):
        load_action_types(write(tmp_path, text))


def test_unreadable_action_types_file_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="SCOREBOARD_ACTION_TYPES_FILE"):
        load_action_types(tmp_path / "missing.toml")
    with pytest.raises(SettingsError, match="SCOREBOARD_ACTION_TYPES_FILE"):
        load_action_types(write(tmp_path, "[action_types.quiz\n"))


def test_trusted_proxies_take_addresses_and_networks() -> None:
    settings = Settings.from_env({"SCOREBOARD_TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/8,::1"})

    assert settings.trusted_proxies == ("127.0.0.1", "10.0.0.0/8", "::1")


@pytest.mark.parametrize(
    ("role", "parts"),
    [
        ("all", {"api", "realtime", "relay"}),
        ("api", {"api"}),
        ("realtime", {"realtime"}),
        ("relay", {"relay"}),
    ],
)
def test_a_role_serves_its_parts(role: str, parts: set[str]) -> None:
    settings = Settings(role=role)

    assert {part for part in ("api", "realtime", "relay") if settings.serves(part)} == parts


def test_a_bad_sentry_dsn_is_refused_without_echoing_its_key() -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({"SCOREBOARD_SENTRY_DSN": "ftp://key0123456789@sentry.example.com/1"})

    assert "key0123456789" not in str(refused.value)


def test_observability_settings_are_read_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "SCOREBOARD_SENTRY_DSN": "https://public@sentry.example.com/42",
            "SCOREBOARD_ENVIRONMENT": "staging",
            "SCOREBOARD_OTEL_ENDPOINT": "http://collector:4318",
            "SCOREBOARD_LOG_FORMAT": "cloudwatch",
        }
    )

    assert settings.sentry_dsn == "https://public@sentry.example.com/42"
    assert "public@" not in repr(settings)
    assert settings.environment == "staging"
    assert settings.otel_endpoint == "http://collector:4318"
    assert settings.log_format == "cloudwatch"
