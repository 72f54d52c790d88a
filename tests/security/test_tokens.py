"""Attacks on access tokens (OWASP API2:2023 Broken Authentication; RFC 8725): each forged, replayed
or stretched token is refused with 401 `unauthenticated` and a reason, before anything is done.

The target is configured like a production deployment after a rotation: an RS256 key signs, the
previous EdDSA key still verifies, and an external identity provider's keys are trusted for its
issuer only.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any

import httpx
import jwt
import pytest
import pytest_asyncio

from scoreboard.app import create_app
from scoreboard.auth.keys import asymmetric_key
from tests.api.support import assert_problem, bearer
from tests.conftest import TEST_SECRET, Api, User, embedded_settings
from tests.token_support import (
    IDP_ISSUER,
    IdentityProvider,
    claims_for,
    ed25519_key,
    hand_signed_hs256,
    pem,
    public_pem,
    rsa_key,
    serving_jwks,
    unsigned,
    write_key,
)

CURRENT, PREVIOUS, RETIRED = rsa_key(), ed25519_key(), ed25519_key()
CURRENT_KID, PREVIOUS_KID = asymmetric_key(pem(CURRENT)).kid, asymmetric_key(pem(PREVIOUS)).kid
RETIRED_KID = asymmetric_key(pem(RETIRED)).kid
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def idp() -> Iterator[IdentityProvider]:
    provider = IdentityProvider()
    provider.add_key("EdDSA")
    with serving_jwks(provider) as served:
        yield served


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def target(
    tmp_path_factory: pytest.TempPathFactory, idp: IdentityProvider
) -> AsyncIterator[tuple[Api, User]]:
    """One app for the module: every test here only tries tokens on it (starting an app and logging in
    costs more than all the attacks)."""
    folder = tmp_path_factory.mktemp("security-tokens")
    settings = replace(
        embedded_settings(folder),
        jwt_secret=None,
        jwt_private_key_file=write_key(folder / "current.pem", CURRENT),
        jwt_previous_key_file=(write_key(folder / "previous.pem", PREVIOUS),),
        jwt_jwks_url=idp.url,
        jwt_external_issuer=IDP_ISSUER,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            api = Api(app, client)
            yield api, await api.user()


def signed(key: Any, algorithm: str, kid: str | None, **claims: Any) -> str:
    headers = {"kid": kid} if kid is not None else None
    return jwt.encode(claims, key, algorithm=algorithm, headers=headers)


async def refused(api: Api, token: str) -> str:
    """Try the token on a write; it must be 401 `unauthenticated`; the reason given."""
    response = await api.http.post("/api/actions", json={"type": "default"}, headers=bearer(token))
    body = assert_problem(response, 401, "unauthenticated")
    assert response.headers["www-authenticate"].startswith("Bearer")
    return str(body["detail"])


async def test_the_controls_are_accepted_so_each_refusal_below_is_meaningful(
    target: tuple[Api, User],
) -> None:
    api, alice = target
    for token in (
        alice.token,
        signed(CURRENT, "RS256", CURRENT_KID, **claims_for(alice.user_id)),
        signed(PREVIOUS, "EdDSA", PREVIOUS_KID, **claims_for(alice.user_id)),
        signed(CURRENT, "RS256", None, **claims_for(alice.user_id)),  # no kid: the current key
    ):
        response = await api.http.post("/api/actions", json={"type": "default"}, headers=bearer(token))
        assert response.status_code == 201, response.text


@pytest.mark.parametrize("kid", [CURRENT_KID, PREVIOUS_KID, None])
async def test_alg_none_is_refused(target: tuple[Api, User], kid: str | None) -> None:
    api, alice = target
    header = {"kid": kid} if kid else {}

    assert "algorithm not allowed" in await refused(api, unsigned(claims_for(alice.user_id), **header))


@pytest.mark.parametrize("kid", [CURRENT_KID, None])
async def test_hs256_signed_with_our_rsa_public_key_is_refused(
    target: tuple[Api, User], kid: str | None
) -> None:
    """Algorithm confusion: the public key is public, so an HMAC made with it proves nothing."""
    api, alice = target
    header = {"kid": kid} if kid else {}
    forged = hand_signed_hs256(claims_for(alice.user_id, roles=["admin"]), public_pem(CURRENT), **header)

    assert "algorithm not allowed" in await refused(api, forged)


async def test_hs256_signed_with_the_published_jwk_is_refused(target: tuple[Api, User]) -> None:
    api, alice = target
    published = (await api.http.get("/.well-known/jwks.json")).json()["keys"][0]
    forged = hand_signed_hs256(claims_for(alice.user_id), published["n"].encode(), kid=published["kid"])

    assert "algorithm not allowed" in await refused(api, forged)


async def test_a_key_used_with_another_algorithm_of_its_family_is_refused(target: tuple[Api, User]) -> None:
    api, alice = target

    assert "algorithm not allowed" in await refused(
        api, signed(CURRENT, "PS256", CURRENT_KID, **claims_for(alice.user_id))
    )


async def test_the_old_shared_test_secret_is_no_key_here(target: tuple[Api, User]) -> None:
    api, alice = target
    no_kid = signed(TEST_SECRET, "HS256", None, **claims_for(alice.user_id))

    assert "algorithm not allowed" in await refused(api, no_kid)


@pytest.mark.parametrize("kid", ["unknown-kid", "../../../../dev/null", "' OR 1=1 --", ""])
async def test_an_unknown_key_id_is_refused(target: tuple[Api, User], kid: str) -> None:
    api, alice = target
    attacker = ed25519_key()

    assert "unknown key id" in await refused(api, signed(attacker, "EdDSA", kid, **claims_for(alice.user_id)))


async def test_a_non_string_key_id_is_refused(target: tuple[Api, User]) -> None:
    api, alice = target
    token = hand_signed_hs256(claims_for(alice.user_id), b"whatever", kid=7)

    assert "malformed" in await refused(api, token)


async def test_a_key_set_url_in_the_token_header_is_never_fetched(target: tuple[Api, User]) -> None:
    """`jku`/`x5u` let a token name its own keys; we never follow them."""
    api, alice = target
    attacker = IdentityProvider()
    kid = attacker.add_key("EdDSA")
    with serving_jwks(attacker):
        key, _ = attacker.keys[kid]
        forged = jwt.encode(
            claims_for(alice.user_id), key, algorithm="EdDSA", headers={"kid": kid, "jku": attacker.url}
        )

        reason = await refused(api, forged)

    assert "unknown key id" in reason
    assert attacker.fetches == 0


async def test_a_key_of_the_attacker_under_our_key_id_is_refused(target: tuple[Api, User]) -> None:
    api, alice = target
    forged = signed(rsa_key(), "RS256", CURRENT_KID, **claims_for(alice.user_id, roles=["admin"]))

    assert "bad signature" in await refused(api, forged)


async def test_a_token_expired_beyond_the_leeway_is_refused(target: tuple[Api, User]) -> None:
    api, alice = target
    now = int(time.time())
    stale = claims_for(alice.user_id, iat=now - 1000, nbf=now - 1000, exp=now - 30)

    assert "expired" in await refused(api, signed(CURRENT, "RS256", CURRENT_KID, **stale))


async def test_a_token_expired_within_the_leeway_is_still_accepted(target: tuple[Api, User]) -> None:
    api, alice = target
    now = int(time.time())
    token = signed(CURRENT, "RS256", CURRENT_KID, **claims_for(alice.user_id, iat=now - 900, exp=now - 2))

    response = await api.http.post("/api/actions", json={"type": "default"}, headers=bearer(token))

    assert response.status_code == 201, "5 s of clock skew are tolerated, no more"


@pytest.mark.parametrize("claim", ["iat", "nbf"])
async def test_a_token_from_the_future_is_refused(target: tuple[Api, User], claim: str) -> None:
    api, alice = target
    later = {claim: int(time.time()) + 60}

    assert "not yet valid" in await refused(
        api, signed(CURRENT, "RS256", CURRENT_KID, **claims_for(alice.user_id, **later))
    )


@pytest.mark.parametrize(
    ("claims", "reason"),
    [({"iss": "https://evil.example/"}, "wrong issuer"), ({"aud": "another-service"}, "wrong audience")],
)
async def test_a_token_for_another_issuer_or_audience_is_refused(
    target: tuple[Api, User], claims: dict[str, str], reason: str
) -> None:
    api, alice = target

    assert reason in await refused(
        api, signed(CURRENT, "RS256", CURRENT_KID, **claims_for(alice.user_id, **claims))
    )


async def test_a_token_of_a_rotated_out_key_is_refused(target: tuple[Api, User]) -> None:
    """RETIRED signed tokens once, and was then dropped from JWT_PREVIOUS_KEY_FILE."""
    api, alice = target

    assert "unknown key id" in await refused(
        api, signed(RETIRED, "EdDSA", RETIRED_KID, **claims_for(alice.user_id))
    )


async def test_the_identity_provider_cannot_mint_our_own_tokens(
    target: tuple[Api, User], idp: IdentityProvider
) -> None:
    """Its keys are trusted for its issuer only: an IdP token claiming our issuer, or an admin role
    the settings do not admit, is refused."""
    api, alice = target
    kid = next(iter(idp.keys))

    ours = await refused(api, idp.token(kid, alice.user_id, ["user"], iss="scoreboard"))
    admin = await refused(api, idp.token(kid, alice.user_id, ["admin"]))

    assert "wrong issuer" in ours
    assert "no accepted role" in admin


async def test_an_identity_provider_token_signed_by_someone_else_is_refused(
    target: tuple[Api, User], idp: IdentityProvider
) -> None:
    api, _ = target
    kid = next(iter(idp.keys))
    claims = claims_for(str(uuid.uuid4()), iss=IDP_ISSUER, roles=["service"])

    assert "bad signature" in await refused(api, signed(ed25519_key(), "EdDSA", kid, **claims))
