"""Key rotation with two active keys: new tokens are signed with the current key, tokens of the
previous key stay valid until they expire, and both are published in the JWKS."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import jwt

from scoreboard.auth.keys import asymmetric_key, symmetric_key
from scoreboard.auth.tokens import AccessTokens
from scoreboard.config import Settings
from tests.api.support import assert_problem, bearer
from tests.conftest import TEST_SECRET, Api
from tests.token_support import ed25519_key, pem, rsa_key, write_key


def token_of(key_pem: bytes, user_id: str) -> str:
    """An access token signed by the key in `key_pem`, as an instance using that key issued it."""
    tokens = AccessTokens(asymmetric_key(key_pem), "scoreboard", "scoreboard", 900)
    return tokens.issue(user_id, ["user"], "", int(time.time())).token


async def test_tokens_of_the_previous_key_stay_valid_and_new_ones_use_the_current_key(
    make_api: Callable[..., Any], settings: Settings, tmp_path: Path
) -> None:
    old, new = ed25519_key(), rsa_key()
    api: Api = await make_api(
        settings,
        jwt_private_key_file=write_key(tmp_path / "new.pem", new),
        jwt_previous_key_file=(write_key(tmp_path / "old.pem", old),),
    )
    alice = await api.user()
    old_token = token_of(pem(old), alice.user_id)

    with_old = await api.http.post("/api/actions", json={"type": "default"}, headers=bearer(old_token))
    with_new = await api.http.post("/api/actions", json={"type": "default"}, headers=alice.auth)
    published = (await api.http.get("/.well-known/jwks.json")).json()["keys"]

    assert with_old.status_code == 201, with_old.text
    assert with_new.status_code == 201, with_new.text
    assert [(k["kid"], k["alg"]) for k in published] == [
        (asymmetric_key(pem(new)).kid, "RS256"),
        (asymmetric_key(pem(old)).kid, "EdDSA"),
    ]
    assert jwt.get_unverified_header(alice.token)["kid"] == published[0]["kid"]


async def test_a_key_rotated_out_of_the_configuration_no_longer_verifies(
    make_api: Callable[..., Any], settings: Settings, tmp_path: Path
) -> None:
    old = ed25519_key()
    api: Api = await make_api(settings, jwt_private_key_file=write_key(tmp_path / "new.pem", ed25519_key()))
    alice = await api.user()

    response = await api.http.post(
        "/api/actions", json={"type": "default"}, headers=bearer(token_of(pem(old), alice.user_id))
    )

    assert "unknown key id" in assert_problem(response, 401, "unauthenticated")["detail"]


async def test_moving_from_the_shared_secret_to_a_key_pair_keeps_logged_in_users_logged_in(
    make_api: Callable[..., Any], settings: Settings, tmp_path: Path
) -> None:
    before: Api = await make_api(settings)
    alice = await before.user()
    assert jwt.get_unverified_header(alice.token)["kid"] == symmetric_key(TEST_SECRET).kid
    moved = replace(
        settings, database_url=settings.database_url, jwt_secret=None, jwt_previous_secret=TEST_SECRET
    )
    after: Api = await make_api(moved, jwt_private_key_file=write_key(tmp_path / "k.pem", ed25519_key()))

    response = await after.http.get("/.well-known/jwks.json")
    still = await after.http.post("/api/score/update", json={}, headers=alice.auth)

    assert len(response.json()["keys"]) == 1, "the shared secret is never published"
    assert_problem(still, 400, "invalid_request")  # past authentication: the old token was accepted
