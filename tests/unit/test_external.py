"""An external identity provider's tokens: verified with its published keys, mapped to a principal
with only the roles the settings admit."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest

from scoreboard.auth.external import ExternalProvider
from scoreboard.auth.keys import symmetric_key
from scoreboard.auth.tokens import AccessTokens, InvalidToken
from tests.token_support import IDP_ISSUER, IdentityProvider, claims_for

SECRET = "unit-test-secret-long-enough-for-hs256-0123456789"


@pytest.fixture
def idp() -> IdentityProvider:
    return IdentityProvider()


def provider(idp: IdentityProvider, folder: Path, **options: Any) -> ExternalProvider:
    path = folder / "jwks.json"
    path.write_text(json.dumps(idp.jwks()), "utf-8")
    external = ExternalProvider(IDP_ISSUER, "scoreboard", file=path, **options)
    external.keys = external.read()
    return external


def verifier(external: ExternalProvider) -> AccessTokens:
    return AccessTokens(symmetric_key(SECRET), "scoreboard", "scoreboard", 900, external=external)


def test_service_token_of_the_provider_becomes_a_service_principal(
    idp: IdentityProvider, tmp_path: Path
) -> None:
    kid = idp.add_key("EdDSA")
    token = idp.token(kid, "game-server-7", ["service", "admin"], jti="abc")

    principal = verifier(provider(idp, tmp_path)).verify(token, time.time())

    assert principal.user_id == "game-server-7"
    assert principal.roles == frozenset({"service"}), "admin is not admitted by default"
    assert principal.token_id == "ext:abc"
    assert principal.account is False


def test_roles_may_come_from_a_space_separated_scope_claim(idp: IdentityProvider, tmp_path: Path) -> None:
    kid = idp.add_key("RS256")
    token = idp.token(kid, "svc", [], scope="read service")

    principal = verifier(provider(idp, tmp_path, roles_claim="scope")).verify(token, time.time())

    assert principal.roles == frozenset({"service"})


def test_token_without_an_admitted_role_is_refused(idp: IdentityProvider, tmp_path: Path) -> None:
    kid = idp.add_key()

    with pytest.raises(InvalidToken, match="no accepted role"):
        verifier(provider(idp, tmp_path)).verify(idp.token(kid, "someone", ["user"]), time.time())


def test_token_without_jti_gets_a_stable_token_id_for_revocation(
    idp: IdentityProvider, tmp_path: Path
) -> None:
    kid = idp.add_key()
    token = idp.token(kid, "svc", ["service"], jti=None)

    first = verifier(provider(idp, tmp_path)).verify(token, time.time())
    again = verifier(provider(idp, tmp_path)).verify(token, time.time())

    assert first.token_id.startswith("ext:")
    assert first.token_id == again.token_id


@pytest.mark.parametrize(
    ("override", "why"),
    [({"iss": "scoreboard"}, "wrong issuer"), ({"aud": "someone-else"}, "wrong audience")],
)
def test_provider_token_for_another_issuer_or_audience_is_refused(
    idp: IdentityProvider, tmp_path: Path, override: dict[str, str], why: str
) -> None:
    kid = idp.add_key()
    key, algorithm = idp.keys[kid]
    token = jwt.encode(
        claims_for("svc", **{"iss": IDP_ISSUER, "roles": ["service"], **override}),
        key,
        algorithm,
        {"kid": kid},
    )

    with pytest.raises(InvalidToken, match=why):
        verifier(provider(idp, tmp_path)).verify(token, time.time())


def test_our_issuer_signed_by_the_provider_is_not_our_token(idp: IdentityProvider, tmp_path: Path) -> None:
    kid = idp.add_key()
    key, algorithm = idp.keys[kid]
    forged = jwt.encode(claims_for("svc", roles=["admin"]), key, algorithm, {"kid": kid})

    with pytest.raises(InvalidToken, match="wrong issuer"):
        verifier(provider(idp, tmp_path)).verify(forged, time.time())


def test_shared_secrets_in_a_key_set_are_ignored(tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    oct_key = {
        "kty": "oct",
        "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA",
        "kid": "shared",
        "alg": "HS256",
    }
    path.write_text(json.dumps({"keys": [oct_key]}), "utf-8")

    with pytest.raises(ValueError, match="no asymmetric signing key"):
        ExternalProvider(IDP_ISSUER, "scoreboard", file=path).read()


async def test_refresh_for_unknown_key_ids_is_rate_limited(idp: IdentityProvider, tmp_path: Path) -> None:
    first = idp.add_key()
    external = provider(idp, tmp_path, min_refresh_seconds=60)
    await external.load()
    second = idp.add_key()
    (tmp_path / "jwks.json").write_text(json.dumps(idp.jwks()), "utf-8")
    assert await external.refresh() is True, "the first unknown key id fetches at once, even after a load"
    idp.add_key()
    (tmp_path / "jwks.json").write_text(json.dumps(idp.jwks()), "utf-8")

    refreshed = await external.refresh()

    assert refreshed is False, "one forced fetch per minute"
    assert set(external.keys) == {first, second}


async def test_refresh_picks_up_a_new_key_and_concurrent_callers_share_one_fetch(
    idp: IdentityProvider, tmp_path: Path
) -> None:
    idp.add_key()
    external = provider(idp, tmp_path, min_refresh_seconds=0)
    added = idp.add_key()
    (tmp_path / "jwks.json").write_text(json.dumps(idp.jwks()), "utf-8")
    fetched: list[str] = []
    external._on_fetch = fetched.append

    results = await asyncio.gather(*(external.refresh() for _ in range(5)))

    assert results == [True] * 5
    assert added in external.keys
    assert fetched == ["fetched"]


async def test_failed_refresh_keeps_the_keys_it_had(idp: IdentityProvider, tmp_path: Path) -> None:
    kid = idp.add_key()
    external = provider(idp, tmp_path, min_refresh_seconds=0)
    (tmp_path / "jwks.json").write_text("not json", "utf-8")

    assert await external.refresh() is False
    assert set(external.keys) == {kid}
