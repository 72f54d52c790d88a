"""The token keys the settings describe: the current signing key, the previous ones still honoured,
and an external identity provider. A key that cannot be used stops start-up with a SettingsError
naming its variable."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import jwt

from scoreboard.auth.external import ExternalProvider
from scoreboard.auth.keys import SigningKey, asymmetric_key, load_or_create_secret, symmetric_key
from scoreboard.auth.tokens import AccessTokens
from scoreboard.config import Settings, SettingsError


def access_tokens(settings: Settings, on_fetch: Callable[[str], None] = lambda outcome: None) -> AccessTokens:
    return AccessTokens(
        signing_key(settings),
        settings.jwt_issuer,
        settings.jwt_audience,
        settings.access_token_ttl_seconds,
        previous=previous_keys(settings),
        external=external_provider(settings, on_fetch),
    )


def signing_key(settings: Settings) -> SigningKey:
    if settings.jwt_private_key_file is not None:
        return _key_file(
            "SCOREBOARD_JWT_PRIVATE_KEY_FILE", settings.jwt_private_key_file, settings.jwt_algorithm
        )
    secret = settings.jwt_secret
    if secret is None:
        folder = settings.data_folder
        folder.mkdir(parents=True, exist_ok=True)
        secret = load_or_create_secret(folder / "jwt-secret")
    return symmetric_key(secret, settings.jwt_algorithm or "HS256")


def previous_keys(settings: Settings) -> list[SigningKey]:
    """Rotated-out keys: each verifies the tokens it signed until they expire, with the algorithm its
    key type implies (or JWT_ALGORITHM when the key can sign that)."""
    keys = []
    for path in settings.jwt_previous_key_file:
        keys.append(_key_file("SCOREBOARD_JWT_PREVIOUS_KEY_FILE", path, settings.jwt_algorithm, strict=False))
    if settings.jwt_previous_secret is not None:
        keys.append(symmetric_key(settings.jwt_previous_secret))
    return keys


def _key_file(variable: str, path: Path, algorithm: str | None, strict: bool = True) -> SigningKey:
    try:
        pem = path.read_bytes()
    except OSError as error:
        raise SettingsError(f"{variable}={path}: {error.strerror or error}") from None
    try:
        return asymmetric_key(pem, algorithm, strict=strict)
    except ValueError as error:
        raise SettingsError(f"{variable}={path}: {error}") from None


def external_provider(settings: Settings, on_fetch: Callable[[str], None]) -> ExternalProvider | None:
    if settings.jwt_jwks_url is None and settings.jwt_jwks_file is None:
        return None
    assert settings.jwt_external_issuer is not None  # Settings.validate requires it
    provider = ExternalProvider(
        settings.jwt_external_issuer,
        settings.jwt_external_audience or settings.jwt_audience,
        url=settings.jwt_jwks_url,
        file=settings.jwt_jwks_file,
        roles=settings.jwt_external_roles,
        roles_claim=settings.jwt_external_roles_claim,
        refresh_seconds=settings.jwt_jwks_refresh_seconds,
        on_fetch=on_fetch,
    )
    if settings.jwt_jwks_file is not None:  # a local file can be checked now: fail start-up if unusable
        try:
            provider.keys = provider.read()
        except (OSError, ValueError, jwt.PyJWTError) as error:
            raise SettingsError(f"SCOREBOARD_JWT_JWKS_FILE={settings.jwt_jwks_file}: {error}") from None
    return provider
