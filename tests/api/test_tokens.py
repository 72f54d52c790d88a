"""Tokens: refresh rotation, logout revocation, JWKS, and the CSRF defence for cookie-authenticated
writes. Bad access tokens are in test_bad_tokens.py."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from scoreboard.config import Settings
from tests.api.support import SUCCESS, assert_problem, bearer, forge
from tests.conftest import PASSWORD, Api, User


async def refresh(api: Api, refresh_token: str) -> httpx.Response:
    return await api.http.post("/api/auth/refresh", json={"refresh_token": refresh_token})


# refresh --------------------------------------------------------------------------------------


async def test_refresh_returns_a_new_working_pair(api: Api) -> None:
    alice = await api.user()

    response = await refresh(api, alice.tokens["refresh_token"])

    assert response.status_code == 200, response.text
    pair = response.json()
    assert pair["token_type"] == "bearer"
    assert pair["expires_in"] == 900
    assert pair["access_token"] != alice.token
    assert pair["refresh_token"] != alice.tokens["refresh_token"]
    api.http.cookies.clear()
    ticket = await api.http.post(
        "/api/actions", json={"type": "default"}, headers=bearer(pair["access_token"])
    )
    assert ticket.status_code == 201


async def test_spent_refresh_token_is_refused(api: Api) -> None:
    alice = await api.user()
    first = await refresh(api, alice.tokens["refresh_token"])

    again = await refresh(api, alice.tokens["refresh_token"])

    assert first.status_code == 200
    assert_problem(again, 401, "invalid_refresh_token")


async def test_reuse_of_a_spent_refresh_token_revokes_its_whole_family(api: Api) -> None:
    alice = await api.user()
    newest = (await refresh(api, alice.tokens["refresh_token"])).json()["refresh_token"]

    reuse = await refresh(api, alice.tokens["refresh_token"])
    with_newest = await refresh(api, newest)

    assert_problem(reuse, 401, "invalid_refresh_token")
    assert_problem(with_newest, 401, "invalid_refresh_token")


async def test_unknown_refresh_token_is_refused(api: Api) -> None:
    response = await refresh(api, "not-a-refresh-token-we-ever-issued")

    assert_problem(response, 401, "invalid_refresh_token")


async def test_refresh_without_a_token_is_400(api: Api) -> None:
    response = await api.http.post("/api/auth/refresh", json={})

    assert_problem(response, 400, "invalid_request")


# logout ---------------------------------------------------------------------------------------


async def test_logout_revokes_the_access_token(api: Api) -> None:
    alice = await api.user()

    response = await api.http.post("/api/auth/logout", headers=alice.auth)
    after = await api.http.post("/api/actions", json={"type": "default"}, headers=alice.auth)

    assert response.status_code == 204
    assert response.content == b""
    assert_problem(after, 401, "unauthenticated")


async def test_logout_revokes_the_refresh_family(api: Api) -> None:
    alice = await api.user()

    await api.http.post("/api/auth/logout", headers=alice.auth)
    response = await refresh(api, alice.tokens["refresh_token"])

    assert_problem(response, 401, "invalid_refresh_token")


async def test_logout_leaves_other_sessions_of_the_same_user_working(api: Api) -> None:
    alice = await api.user()
    other = await api.login(alice.username)
    api.http.cookies.clear()

    await api.http.post("/api/auth/logout", headers=alice.auth)
    still = await api.http.post(
        "/api/actions", json={"type": "default"}, headers=bearer(other["access_token"])
    )
    renewed = await refresh(api, other["refresh_token"])

    assert still.status_code == 201
    assert renewed.status_code == 200


async def test_logout_without_a_token_is_401(api: Api) -> None:
    response = await api.http.post("/api/auth/logout")

    assert_problem(response, 401, "unauthenticated")


# JWKS -----------------------------------------------------------------------------------------


async def test_jwks_is_empty_for_a_shared_secret(api: Api) -> None:
    response = await api.http.get("/.well-known/jwks.json")

    assert response.status_code == 200
    assert response.json() == {"keys": []}


def ed25519_key() -> PrivateKeyTypes:
    return ed25519.Ed25519PrivateKey.generate()


def rsa_key() -> PrivateKeyTypes:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.mark.parametrize(
    ("algorithm", "generate", "kty"),
    [("EdDSA", ed25519_key, "OKP"), ("RS256", rsa_key, "RSA")],
)
async def test_jwks_publishes_the_asymmetric_key_that_verifies_issued_tokens(
    make_api: Callable[..., Any],
    settings: Settings,
    tmp_path: Path,
    algorithm: str,
    generate: Callable[[], PrivateKeyTypes],
    kty: str,
) -> None:
    key_file = tmp_path / "signing-key.pem"
    key_file.write_bytes(
        generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    api: Api = await make_api(settings, jwt_private_key_file=key_file, jwt_algorithm=algorithm)
    alice = await api.user()

    keys = (await api.http.get("/.well-known/jwks.json")).json()["keys"]

    assert len(keys) == 1
    published = keys[0]
    assert published["kty"] == kty
    assert published["kid"]
    assert "d" not in published  # never the private part
    assert jwt.get_unverified_header(alice.token) == {"alg": algorithm, "kid": published["kid"], "typ": "JWT"}
    claims = jwt.decode(
        alice.token,
        jwt.PyJWK(published).key,
        algorithms=[algorithm],
        audience="scoreboard",
        issuer="scoreboard",
    )
    assert claims["sub"] == alice.user_id
    assert claims["roles"] == ["user"]
    assert {"iat", "exp", "jti"} <= set(claims)
    ticket = await api.http.post("/api/actions", json={"type": "default"}, headers=alice.auth)
    assert ticket.status_code == 201
    hs256 = await api.http.post(
        "/api/actions", json={"type": "default"}, headers=bearer(forge(alice.user_id))
    )
    assert_problem(hs256, 401, "unauthenticated")


# cookies and CSRF -----------------------------------------------------------------------------


async def cookie_session(api: Api) -> tuple[User, dict[str, Any]]:
    """A user whose login cookie stays in the client (no Authorization header is sent)."""
    account = await api.register()
    pair = await api.login(account["username"])
    assert api.http.cookies.get("access_token") == pair["access_token"]
    return User(account["user_id"], account["username"], pair["access_token"], pair), pair


async def test_cookie_authenticated_write_without_csrf_header_is_403(api: Api) -> None:
    await cookie_session(api)

    response = await api.http.post("/api/actions", json={"type": "default"})

    assert_problem(response, 403, "csrf_failed")


async def test_cookie_authenticated_write_with_a_wrong_csrf_header_is_403(api: Api) -> None:
    await cookie_session(api)

    response = await api.http.post(
        "/api/actions", json={"type": "default"}, headers={"X-CSRF-Token": "guess"}
    )

    assert_problem(response, 403, "csrf_failed")


async def test_csrf_token_of_another_session_does_not_pass(api: Api) -> None:
    other = await api.user()
    await cookie_session(api)

    response = await api.http.post(
        "/api/actions", json={"type": "default"}, headers={"X-CSRF-Token": other.tokens["csrf_token"]}
    )

    assert_problem(response, 403, "csrf_failed")


async def test_cookie_authenticated_writes_work_with_the_csrf_token_from_login(api: Api) -> None:
    alice, pair = await cookie_session(api)
    csrf = {"X-CSRF-Token": pair["csrf_token"]}

    ticket = await api.http.post("/api/actions", json={"type": "default"}, headers=csrf)
    update = await api.http.post(
        "/api/score/update",
        json={"user_id": alice.user_id, "action_id": ticket.json()["action_id"]},
        headers=csrf,
    )

    assert ticket.status_code == 201, ticket.text
    assert update.status_code == 200, update.text
    assert update.json() == {"message": SUCCESS, "new_score": 1, "rank": 1}


async def test_login_also_sets_a_readable_csrf_cookie_matching_the_body(api: Api) -> None:
    _, pair = await cookie_session(api)

    assert api.http.cookies.get("csrf_token") == pair["csrf_token"]


async def test_bearer_authenticated_write_needs_no_csrf_header(api: Api) -> None:
    alice = await api.user()

    response = await api.http.post("/api/actions", json={"type": "default"}, headers=alice.auth)

    assert response.status_code == 201


async def test_cookie_authenticated_read_needs_no_csrf_header(
    make_api: Callable[..., Any], settings: Settings
) -> None:
    api: Api = await make_api(settings, public_scoreboard=False)
    await cookie_session(api)

    response = await api.http.get("/api/leaderboard")

    assert response.status_code == 200


async def test_logout_by_cookie_needs_csrf_and_then_clears_the_cookie(api: Api) -> None:
    _, pair = await cookie_session(api)

    refused = await api.http.post("/api/auth/logout")
    response = await api.http.post("/api/auth/logout", headers={"X-CSRF-Token": pair["csrf_token"]})

    assert_problem(refused, 403, "csrf_failed")
    assert response.status_code == 204
    assert "access_token" not in api.http.cookies
    leftover = await api.http.post(
        "/api/actions", json={"type": "default"}, headers=bearer(pair["access_token"])
    )
    assert_problem(leftover, 401, "unauthenticated")


async def test_wrong_password_login_sets_no_cookie(api: Api) -> None:
    account = await api.register()

    await api.http.post("/api/auth/login", json={"username": account["username"], "password": PASSWORD + "x"})

    assert "access_token" not in api.http.cookies
