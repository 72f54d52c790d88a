"""Token settings: keys, rotation and the external identity provider, refused with clear messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scoreboard.auth.configured import access_tokens
from scoreboard.config import Settings, SettingsError
from tests.token_support import IdentityProvider, ed25519_key, public_jwk, rsa_key, write_key

SECRET = "settings-test-secret-long-enough-for-hs256-0123456789"
IDP = {"SCOREBOARD_JWT_EXTERNAL_ISSUER": "https://idp.example.test/"}


def settings(**env: str) -> Settings:
    return Settings.from_env({"SCOREBOARD_JWT_SECRET": SECRET, **env})


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"SCOREBOARD_JWT_ALGORITHM": "none"}, "SCOREBOARD_JWT_ALGORITHM='none': expected one of"),
        ({"SCOREBOARD_JWT_ALGORITHM": "RS256"}, "RS256 needs SCOREBOARD_JWT_PRIVATE_KEY_FILE"),
        (
            {"SCOREBOARD_JWT_ALGORITHM": "HS256", "SCOREBOARD_JWT_PRIVATE_KEY_FILE": "/k.pem"},
            "HS256 is a shared-secret algorithm",
        ),
        ({"SCOREBOARD_JWT_PREVIOUS_SECRET": "short"}, "PREVIOUS_SECRET must be at least 32"),
        (
            {"SCOREBOARD_JWT_JWKS_URL": "https://idp/jwks", "SCOREBOARD_JWT_JWKS_FILE": "/jwks.json", **IDP},
            "not both",
        ),
        ({"SCOREBOARD_JWT_JWKS_URL": "http://idp.example.test/jwks", **IDP}, "expected an https:// URL"),
        ({"SCOREBOARD_JWT_JWKS_URL": "file:///etc/jwks.json", **IDP}, "expected an https:// URL"),
        ({"SCOREBOARD_JWT_JWKS_URL": "https://idp.example.test/jwks"}, "EXTERNAL_ISSUER is required"),
        (
            {"SCOREBOARD_JWT_JWKS_URL": "https://idp/jwks", "SCOREBOARD_JWT_EXTERNAL_ISSUER": "scoreboard"},
            "must differ from SCOREBOARD_JWT_ISSUER",
        ),
        (
            {"SCOREBOARD_JWT_JWKS_URL": "https://idp/jwks", "SCOREBOARD_JWT_EXTERNAL_ROLES": "root", **IDP},
            "expected one or more of service, user, admin",
        ),
        (
            {
                "SCOREBOARD_JWT_JWKS_URL": "https://idp/jwks",
                "SCOREBOARD_JWT_JWKS_REFRESH_SECONDS": "1",
                **IDP,
            },
            "at least 10",
        ),
    ],
)
def test_unusable_token_settings_are_refused_by_name(env: dict[str, str], expected: str) -> None:
    with pytest.raises(SettingsError, match=expected):
        settings(**env)


def test_http_jwks_url_is_allowed_on_the_loopback() -> None:
    loaded = settings(SCOREBOARD_JWT_JWKS_URL="http://127.0.0.1:8080/jwks.json", **IDP)

    assert loaded.jwt_jwks_url == "http://127.0.0.1:8080/jwks.json"
    assert loaded.jwt_external_roles == ("service",)


def test_previous_key_files_are_a_comma_separated_list(tmp_path: Path) -> None:
    first, second = write_key(tmp_path / "a.pem", ed25519_key()), write_key(tmp_path / "b.pem", rsa_key())
    current = write_key(tmp_path / "now.pem", ed25519_key())

    loaded = settings(
        SCOREBOARD_JWT_PRIVATE_KEY_FILE=str(current),
        SCOREBOARD_JWT_PREVIOUS_KEY_FILE=f"{first}, {second}",
        SCOREBOARD_JWT_PREVIOUS_SECRET=SECRET,
    )
    tokens = access_tokens(loaded)

    assert loaded.jwt_previous_key_file == (first, second)
    assert [k["alg"] for k in tokens.public_jwks] == ["EdDSA", "EdDSA", "RS256"]
    assert tokens.signing_key.algorithm == "EdDSA"


def test_missing_key_file_names_its_variable(tmp_path: Path) -> None:
    loaded = settings(SCOREBOARD_JWT_PRIVATE_KEY_FILE=str(tmp_path / "absent.pem"))

    with pytest.raises(SettingsError, match=r"SCOREBOARD_JWT_PRIVATE_KEY_FILE=.*absent\.pem"):
        access_tokens(loaded)


def test_key_of_the_wrong_type_for_the_algorithm_names_its_variable(tmp_path: Path) -> None:
    loaded = settings(
        SCOREBOARD_JWT_PRIVATE_KEY_FILE=str(write_key(tmp_path / "k.pem", ed25519_key())),
        SCOREBOARD_JWT_ALGORITHM="RS256",
    )

    with pytest.raises(SettingsError, match="cannot sign RS256"):
        access_tokens(loaded)


def test_unusable_jwks_file_stops_start_up(tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    path.write_text('{"keys": []}', "utf-8")

    with pytest.raises(SettingsError, match=r"SCOREBOARD_JWT_JWKS_FILE=.*jwks\.json"):
        access_tokens(settings(SCOREBOARD_JWT_JWKS_FILE=str(path), **IDP))


def test_jwks_file_keys_are_loaded_at_once(tmp_path: Path) -> None:
    idp = IdentityProvider()
    kid = idp.add_key()
    key, algorithm = idp.keys[kid]
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [public_jwk(key, kid, algorithm)]}), "utf-8")

    tokens = access_tokens(settings(SCOREBOARD_JWT_JWKS_FILE=str(path), **IDP))

    assert tokens.external is not None
    assert set(tokens.external.keys) == {kid}
    assert tokens.external.audience == "scoreboard"
