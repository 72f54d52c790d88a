"""Settings: read once from the environment (prefix SCOREBOARD_), every one with a safe default."""

from __future__ import annotations

import os
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from scoreboard.domain.actions import ActionCatalog, ActionPolicy, ActionType

PREFIX = "SCOREBOARD_"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class SettingsError(ValueError):
    """A setting has a value we cannot use; the message names the variable and the value."""


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite:///./scoreboard.db"
    redis_url: str | None = None
    broker_url: str | None = None
    redis_prefix: str = ""
    data_dir: Path | None = None
    jwt_secret: str | None = field(default=None, repr=False)
    jwt_private_key_file: Path | None = None
    jwt_algorithm: str = "HS256"
    jwt_issuer: str = "scoreboard"
    jwt_audience: str = "scoreboard"
    access_token_ttl_seconds: int = 900
    refresh_token_ttl_seconds: int = 14 * 24 * 3600
    action_policy: ActionPolicy = ActionPolicy.TICKETED
    action_types_file: Path | None = None
    rate_limit_score_updates: str = "10/second;300/minute"
    rate_limit_login: str = "5/minute"
    rate_limit_register: str = "20/minute"
    rate_limit_actions: str = "20/second;600/minute"
    allowed_origins: tuple[str, ...] = ()
    public_scoreboard: bool = True
    log_format: str = field(default_factory=lambda: "console" if sys.stderr.isatty() else "json")
    log_level: str = "info"
    max_body_bytes: int = 4096
    # Observability (docs/operations.md): error reports, traces, the deployment's name in both.
    sentry_dsn: str | None = field(default=None, repr=False)
    environment: str = "production"
    otel_endpoint: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from `SCOREBOARD_*` variables; unknown values fail with a clear message."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for spec in fields(cls):
            raw = env.get(PREFIX + spec.name.upper())
            if raw is not None and raw.strip() != "":
                values[spec.name] = _convert(spec.name, str(spec.type), raw.strip())
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        if not self.database_url.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise SettingsError(
                f"SCOREBOARD_DATABASE_URL={self.database_url!r}: expected sqlite:///path or"
                " postgresql://user@host:port/db"
            )
        if self.log_format not in {"console", "json", "cloudwatch"}:
            raise SettingsError(
                f"SCOREBOARD_LOG_FORMAT={self.log_format!r}: expected console, json or cloudwatch"
            )
        if self.access_token_ttl_seconds < 30:
            raise SettingsError("SCOREBOARD_ACCESS_TOKEN_TTL_SECONDS must be at least 30")
        self._validate_observability()

    def _validate_observability(self) -> None:
        if self.sentry_dsn is not None:
            dsn = urlsplit(self.sentry_dsn)
            if dsn.scheme not in {"http", "https"} or not dsn.username or not dsn.path.strip("/"):
                # The value is not echoed: a DSN carries a key.
                raise SettingsError("SCOREBOARD_SENTRY_DSN: expected https://<key>@<host>/<project id>")
        if self.otel_endpoint is not None and urlsplit(self.otel_endpoint).scheme not in {"http", "https"}:
            raise SettingsError(
                f"SCOREBOARD_OTEL_ENDPOINT={self.otel_endpoint!r}: expected an OTLP/HTTP URL such as"
                " http://collector:4318"
            )

    @property
    def data_folder(self) -> Path:
        """Where generated state (the JWT secret) is kept: DATA_DIR, else beside the SQLite file."""
        if self.data_dir is not None:
            return self.data_dir
        if self.database_url.startswith("sqlite:///"):
            return Path(self.database_url.removeprefix("sqlite:///")).parent
        return Path(".")

    def action_catalog(self) -> ActionCatalog:
        if self.action_types_file is None:
            return ActionCatalog.default()
        return load_action_types(self.action_types_file)


def load_action_types(path: Path) -> ActionCatalog:
    """Action types from TOML: `[action_types.NAME]` with points, ttl_seconds, min_seconds,
    per_user_per_hour."""
    try:
        document = tomllib.loads(path.read_text("utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise SettingsError(f"SCOREBOARD_ACTION_TYPES_FILE={path}: {error}") from None
    tables = document.get("action_types")
    if not isinstance(tables, dict) or not tables:
        raise SettingsError(f"{path}: expected at least one [action_types.NAME] table")
    allowed = {"points", "ttl_seconds", "min_seconds", "per_user_per_hour"}
    types = {}
    for name, table in tables.items():
        unknown = set(table) - allowed if isinstance(table, dict) else {"(not a table)"}
        if unknown:
            raise SettingsError(f"{path}: action type {name!r} has unknown keys {sorted(unknown)}")
        try:
            types[name] = ActionType(name=name, **table)
        except (TypeError, ValueError) as error:
            raise SettingsError(f"{path}: {error}") from None
    return ActionCatalog(types)


def _convert(name: str, kind: str, raw: str) -> Any:
    variable = PREFIX + name.upper()
    if "bool" in kind:
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        raise SettingsError(f"{variable}={raw!r}: expected true or false")
    if "int" in kind:
        try:
            return int(raw)
        except ValueError:
            raise SettingsError(f"{variable}={raw!r}: expected a whole number") from None
    if "Path" in kind:
        return Path(raw)
    if "tuple" in kind:
        return tuple(part.strip().rstrip("/") for part in raw.split(",") if part.strip())
    if "ActionPolicy" in kind:
        try:
            return ActionPolicy(raw.lower())
        except ValueError:
            raise SettingsError(f"{variable}={raw!r}: expected ticketed or open") from None
    return raw
