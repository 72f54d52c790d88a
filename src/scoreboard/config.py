"""Settings: read once from the environment (prefix SCOREBOARD_), every one with a safe default."""

from __future__ import annotations

import ipaddress
import math
import os
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from scoreboard.auth.keys import ASYMMETRIC, SYMMETRIC
from scoreboard.domain.actions import ActionCatalog, ActionPolicy, ActionType
from scoreboard.domain.model import Role

PREFIX = "SCOREBOARD_"
# What one process serves (`scoreboard serve --role`): the HTTP API, the WebSocket/SSE fan-out, the
# outbox relay, or all three. Split roles share state only through PostgreSQL, Redis and the broker.
ROLES = ("all", "api", "realtime", "relay")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class SettingsError(ValueError):
    """A setting has a value we cannot use; the message names the variable and the value."""


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite:///./scoreboard.db"
    database_read_url: str | None = None
    redis_url: str | None = None
    broker_url: str | None = None
    redis_prefix: str = ""
    data_dir: Path | None = None
    jwt_secret: str | None = field(default=None, repr=False)
    jwt_private_key_file: Path | None = None
    jwt_algorithm: str | None = None  # HS256 for a secret; for a key file, what its key type implies
    jwt_previous_key_file: tuple[Path, ...] = ()  # rotated-out keys: they verify, never sign
    jwt_previous_secret: str | None = field(default=None, repr=False)
    jwt_jwks_url: str | None = None  # an external identity provider's keys...
    jwt_jwks_file: Path | None = None  # ...or the same as a file
    jwt_external_issuer: str | None = None
    jwt_external_audience: str | None = None  # default: JWT_AUDIENCE
    jwt_external_roles: tuple[str, ...] = ("service",)
    jwt_external_roles_claim: str = "roles"
    jwt_jwks_refresh_seconds: int = 300
    jwt_issuer: str = "scoreboard"
    jwt_audience: str = "scoreboard"
    access_token_ttl_seconds: int = 900
    refresh_token_ttl_seconds: int = 14 * 24 * 3600
    action_policy: ActionPolicy = ActionPolicy.TICKETED
    action_types_file: Path | None = None
    rate_limit_score_updates: str = "10/second;300/minute"
    rate_limit_login: str = "5/minute"
    rate_limit_register: str = "20/minute"
    # Unset: the same as RATE_LIMIT_SCORE_UPDATES — a ticket is worth one update, so issuing them
    # faster than they can be redeemed buys nothing, and `off` for updates (tests, benchmarks) means
    # tickets are not the bottleneck either.
    rate_limit_actions: str | None = None
    rate_limit_per_address: str = "200/second;6000/minute"
    login_attempts_per_hour: int = 100
    login_backoff_free: int = 5  # as many as RATE_LIMIT_LOGIN's default 5/minute allows
    login_backoff_max_seconds: int = 900
    allowed_origins: tuple[str, ...] = ()
    public_scoreboard: bool = True
    log_format: str = field(default_factory=lambda: "console" if sys.stderr.isatty() else "json")
    log_level: str = "info"
    max_body_bytes: int = 4096
    role: str = "all"
    trusted_proxies: tuple[str, ...] = ()
    ws_max_connections: int = 20_000
    ws_max_connections_per_address: int = 50
    ws_ping_interval_seconds: float = 20.0
    ws_ping_timeout_seconds: float = 20.0
    ws_idle_timeout_seconds: float = 60.0
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
        self._validate_read_url()
        if self.log_format not in {"console", "json", "cloudwatch"}:
            raise SettingsError(
                f"SCOREBOARD_LOG_FORMAT={self.log_format!r}: expected console, json or cloudwatch"
            )
        for proxy in self.trusted_proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise SettingsError(
                    f"SCOREBOARD_TRUSTED_PROXIES: {proxy!r} is not an IP address or network (e.g. 10.0.0.0/8)"
                ) from None
        if self.role not in ROLES:
            raise SettingsError(f"SCOREBOARD_ROLE={self.role!r}: expected one of {', '.join(ROLES)}")
        if self.access_token_ttl_seconds < 30:
            raise SettingsError("SCOREBOARD_ACCESS_TOKEN_TTL_SECONDS must be at least 30")
        validate_token_settings(self)
        self._validate_websocket()
        self._validate_observability()
        if "*" in self.allowed_origins:
            raise SettingsError(
                "SCOREBOARD_ALLOWED_ORIGINS must name origins (https://host:port): '*' would let any"
                " site act with a signed-in visitor's cookie"
            )
        for name in ("login_attempts_per_hour", "login_backoff_free", "login_backoff_max_seconds"):
            if getattr(self, name) < 0:
                raise SettingsError(f"{PREFIX}{name.upper()}={getattr(self, name)}: must not be negative")

    def serves(self, part: str) -> bool:
        """Whether this process runs `part` (api, realtime or relay) of the service."""
        return self.role in ("all", part)

    @property
    def shares_state(self) -> bool:
        """Whether every piece of state lives outside the process (so several processes agree)."""
        return self.redis_url is not None and not self.database_url.startswith("sqlite")

    def _validate_websocket(self) -> None:
        for name in ("ws_max_connections", "ws_max_connections_per_address"):
            if getattr(self, name) < 1:
                raise SettingsError(f"SCOREBOARD_{name.upper()} must be at least 1")
        for name in ("ws_ping_interval_seconds", "ws_ping_timeout_seconds", "ws_idle_timeout_seconds"):
            if not 0 < getattr(self, name) < math.inf:
                raise SettingsError(f"SCOREBOARD_{name.upper()} must be a positive number of seconds")

    def _validate_read_url(self) -> None:
        if self.database_read_url is None:
            return
        if self.database_url.startswith("sqlite:///"):
            raise SettingsError(
                "SCOREBOARD_DATABASE_READ_URL is set, but SCOREBOARD_DATABASE_URL is SQLite, which has no"
                " read replicas: unset it, or use PostgreSQL for both"
            )
        if not self.database_read_url.startswith(("postgresql://", "postgres://")):
            raise SettingsError(
                f"SCOREBOARD_DATABASE_READ_URL={self.database_read_url.split('@')[-1]!r}: expected"
                " postgresql://user@replica-host:port/db (a streaming replica of the primary)"
            )

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


def validate_token_settings(settings: Settings) -> None:
    algorithm, key_file = settings.jwt_algorithm, settings.jwt_private_key_file
    if algorithm is not None and algorithm not in SYMMETRIC | ASYMMETRIC:
        raise SettingsError(
            f"SCOREBOARD_JWT_ALGORITHM={algorithm!r}: expected one of {', '.join(sorted(SYMMETRIC | ASYMMETRIC))}"
        )
    if key_file is not None and algorithm in SYMMETRIC:
        raise SettingsError(
            f"SCOREBOARD_JWT_ALGORITHM={algorithm} is a shared-secret algorithm, but SCOREBOARD_JWT_PRIVATE_KEY_FILE"
            " is set: use EdDSA, RS256 or ES256 (or leave the algorithm unset to take the key's own)"
        )
    if key_file is None and algorithm in ASYMMETRIC:
        raise SettingsError(f"SCOREBOARD_JWT_ALGORITHM={algorithm} needs SCOREBOARD_JWT_PRIVATE_KEY_FILE")
    if settings.jwt_previous_secret is not None and len(settings.jwt_previous_secret) < 32:
        raise SettingsError("SCOREBOARD_JWT_PREVIOUS_SECRET must be at least 32 characters")
    _validate_external(settings)


def _validate_external(settings: Settings) -> None:
    url, file, issuer = settings.jwt_jwks_url, settings.jwt_jwks_file, settings.jwt_external_issuer
    if url is not None and file is not None:
        raise SettingsError("set SCOREBOARD_JWT_JWKS_URL or SCOREBOARD_JWT_JWKS_FILE, not both")
    if url is None and file is None:
        return
    if url is not None:
        parts = urlsplit(url)
        loopback = parts.hostname in {"127.0.0.1", "::1", "localhost"}
        if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
            raise SettingsError(
                f"SCOREBOARD_JWT_JWKS_URL={url!r}: expected an https:// URL (http:// only on the loopback)"
            )
    if not issuer:
        raise SettingsError("SCOREBOARD_JWT_EXTERNAL_ISSUER is required with a JWKS URL or file")
    if issuer == settings.jwt_issuer:
        raise SettingsError(
            f"SCOREBOARD_JWT_EXTERNAL_ISSUER={issuer!r} must differ from SCOREBOARD_JWT_ISSUER:"
            " a token naming our issuer must be signed by our own keys"
        )
    unknown = set(settings.jwt_external_roles) - {str(r) for r in Role}
    if unknown or not settings.jwt_external_roles:
        raise SettingsError(
            f"SCOREBOARD_JWT_EXTERNAL_ROLES={','.join(settings.jwt_external_roles)!r}:"
            " expected one or more of service, user, admin"
        )
    if settings.jwt_jwks_refresh_seconds < 10:
        raise SettingsError("SCOREBOARD_JWT_JWKS_REFRESH_SECONDS must be at least 10")


def _convert(name: str, kind: str, raw: str) -> Any:
    variable = PREFIX + name.upper()
    if "bool" in kind:
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        raise SettingsError(f"{variable}={raw!r}: expected true or false")
    if kind == "float":
        try:
            return float(raw)
        except ValueError:
            raise SettingsError(f"{variable}={raw!r}: expected a number") from None
    if "int" in kind:
        try:
            return int(raw)
        except ValueError:
            raise SettingsError(f"{variable}={raw!r}: expected a whole number") from None
    if "tuple[Path" in kind:
        return tuple(Path(part.strip()) for part in raw.split(",") if part.strip())
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
