"""Access tokens: a round trip, and every reason a token is refused."""

from __future__ import annotations

import time
import uuid

import jwt
import pytest

from scoreboard.auth.keys import asymmetric_key, symmetric_key
from scoreboard.auth.tokens import LEEWAY_SECONDS, AccessTokens, InvalidToken
from scoreboard.domain.model import Principal
from tests.token_support import ed25519_key, pem, rsa_key

SECRET = "unit-test-secret-long-enough-even-for-hs512-signatures-0123456789abcdef"
OTHER_SECRET = "another-secret-that-is-also-long-enough-9876543210"
TTL = 900


def tokens(secret: str = SECRET, issuer: str = "scoreboard", audience: str = "scoreboard") -> AccessTokens:
    return AccessTokens(symmetric_key(secret), issuer, audience, TTL)


def claims(**overrides: object) -> dict[str, object]:
    now = int(time.time())
    base: dict[str, object] = {
        "sub": "user-1",
        "iat": now,
        "exp": now + TTL,
        "jti": str(uuid.uuid4()),
        "iss": "scoreboard",
        "aud": "scoreboard",
        "roles": ["user"],
    }
    return {k: v for k, v in {**base, **overrides}.items() if v is not None}


def forged(algorithm: str = "HS256", overrides: dict[str, object] | None = None) -> str:
    """A token signed with the right secret, with `algorithm` and claims of the test's choosing."""
    return jwt.encode(claims(**(overrides or {})), SECRET, algorithm=algorithm)


def reason(token: str, now: float | None = None) -> str:
    with pytest.raises(InvalidToken) as refused:
        tokens().verify(token, time.time() if now is None else now)
    return refused.value.reason


def test_issued_token_verifies_to_its_principal() -> None:
    now = int(time.time())
    access = tokens()

    issued = access.issue("user-1", ["user", "admin"], "session-1", now)
    principal = access.verify(issued.token, now)

    assert principal == Principal(
        user_id="user-1",
        roles=frozenset({"user", "admin"}),
        token_id=issued.token_id,
        session_id="session-1",
        expires_at=now + TTL,
        csrf=issued.csrf,
        issued_at=now,
    )
    assert issued.expires_at == now + TTL
    assert jwt.get_unverified_header(issued.token)["kid"] == symmetric_key(SECRET).kid


def test_every_token_gets_its_own_id_and_csrf_value() -> None:
    now = int(time.time())
    first = tokens().issue("user-1", ["user"], "s", now)
    second = tokens().issue("user-1", ["user"], "s", now)

    assert first.token_id != second.token_id
    assert first.csrf != second.csrf


def test_token_verified_once_is_refused_after_it_expires() -> None:
    now = int(time.time())
    access = tokens()
    issued = access.issue("user-1", ["user"], "s", now)
    access.verify(issued.token, now)

    with pytest.raises(InvalidToken, match="expired"):
        access.verify(issued.token, now + TTL + LEEWAY_SECONDS + 1)


def test_expired_token_is_refused() -> None:
    past = int(time.time()) - TTL - LEEWAY_SECONDS - 60
    issued = tokens().issue("user-1", ["user"], "s", past)

    assert reason(issued.token) == "expired"


def test_token_for_another_audience_is_refused() -> None:
    issued = tokens(audience="elsewhere").issue("user-1", ["user"], "s", int(time.time()))

    assert reason(issued.token) == "wrong audience"


def test_token_from_another_issuer_is_refused() -> None:
    issued = tokens(issuer="elsewhere").issue("user-1", ["user"], "s", int(time.time()))

    assert reason(issued.token) == "wrong issuer"


def test_token_of_another_key_is_refused_for_its_unknown_key_id() -> None:
    issued = tokens(secret=OTHER_SECRET).issue("user-1", ["user"], "s", int(time.time()))

    assert reason(issued.token) == "unknown key id"


def test_token_signed_with_another_key_under_our_key_id_is_refused() -> None:
    our_kid = {"kid": symmetric_key(SECRET).kid}

    assert reason(jwt.encode(claims(), OTHER_SECRET, algorithm="HS256", headers=our_kid)) == "bad signature"


@pytest.mark.parametrize("algorithm", ["HS384", "HS512"])
def test_token_with_another_algorithm_is_refused(algorithm: str) -> None:
    assert reason(forged(algorithm)) == "algorithm not allowed"


def test_unsigned_token_is_refused() -> None:
    assert reason(jwt.encode(claims(), "", algorithm="none")) == "algorithm not allowed"


@pytest.mark.parametrize("garbage", ["", "garbage", "a.b.c", "Bearer x.y.z"])
def test_garbage_is_refused_as_malformed(garbage: str) -> None:
    assert reason(garbage).startswith("malformed")


@pytest.mark.parametrize("claim", ["exp", "iat", "iss", "aud", "sub", "jti"])
def test_token_missing_a_required_claim_is_refused(claim: str) -> None:
    assert reason(forged(overrides={claim: None})).startswith("malformed")


def test_token_with_malformed_roles_is_refused() -> None:
    assert reason(forged(overrides={"roles": "admin"})) == "malformed roles claim"
    assert reason(forged(overrides={"roles": ["user", 7]})) == "malformed roles claim"


def test_token_without_roles_has_none() -> None:
    principal = tokens().verify(forged(overrides={"roles": None}), time.time())

    assert principal.roles == frozenset()
    assert not principal.may_act_for("someone-else")


# clock skew: a bounded leeway, also for tokens from the future --------------------------------


def test_token_issued_in_the_future_beyond_the_leeway_is_refused() -> None:
    later = int(time.time()) + LEEWAY_SECONDS + 30

    assert reason(forged(overrides={"iat": later})) == "not yet valid"


def test_token_not_valid_before_a_time_beyond_the_leeway_is_refused() -> None:
    later = int(time.time()) + LEEWAY_SECONDS + 30

    assert reason(forged(overrides={"nbf": later})) == "not yet valid"


def test_clock_skew_within_the_leeway_is_tolerated() -> None:
    now = int(time.time())
    token = forged(overrides={"iat": now + 2, "nbf": now + 2, "exp": now - 2})

    assert tokens().verify(token, now).user_id == "user-1"


def test_token_expired_beyond_the_leeway_is_refused() -> None:
    now = int(time.time())

    assert reason(forged(overrides={"exp": now - LEEWAY_SECONDS - 2})) == "expired"


# rotation: the current key signs, previous keys still verify ----------------------------------


def test_rotated_keys_sign_with_the_current_key_and_verify_with_both() -> None:
    old_key, new_key = asymmetric_key(pem(ed25519_key())), asymmetric_key(pem(rsa_key()))
    now = int(time.time())
    old_token = (
        AccessTokens(old_key, "scoreboard", "scoreboard", TTL).issue("user-1", ["user"], "s", now).token
    )
    rotated = AccessTokens(new_key, "scoreboard", "scoreboard", TTL, previous=[old_key])

    new_token = rotated.issue("user-2", ["user"], "s", now).token

    assert jwt.get_unverified_header(new_token) == {"alg": "RS256", "kid": new_key.kid, "typ": "JWT"}
    assert rotated.verify(old_token, now).user_id == "user-1"
    assert rotated.verify(new_token, now).user_id == "user-2"
    assert [k["kid"] for k in rotated.public_jwks] == [new_key.kid, old_key.kid]


def test_previous_shared_secret_keeps_its_tokens_valid_after_moving_to_a_key_pair() -> None:
    now = int(time.time())
    old_token = tokens().issue("user-1", ["user"], "s", now).token
    rotated = AccessTokens(
        asymmetric_key(pem(ed25519_key())), "scoreboard", "scoreboard", TTL, [symmetric_key(SECRET)]
    )

    assert rotated.verify(old_token, now).user_id == "user-1"
    assert len(rotated.public_jwks) == 1, "a shared secret is never published"


def test_token_of_a_key_no_longer_configured_is_refused() -> None:
    old_key, new_key = asymmetric_key(pem(ed25519_key())), asymmetric_key(pem(ed25519_key()))
    now = int(time.time())
    old_token = (
        AccessTokens(old_key, "scoreboard", "scoreboard", TTL).issue("user-1", ["user"], "s", now).token
    )

    with pytest.raises(InvalidToken, match="unknown key id"):
        AccessTokens(new_key, "scoreboard", "scoreboard", TTL).verify(old_token, now)


def test_token_without_kid_is_checked_against_the_current_key_only() -> None:
    old_key = symmetric_key(OTHER_SECRET)
    rotated = AccessTokens(symmetric_key(SECRET), "scoreboard", "scoreboard", TTL, previous=[old_key])

    with pytest.raises(InvalidToken, match="bad signature"):
        rotated.verify(jwt.encode(claims(), OTHER_SECRET, algorithm="HS256"), time.time())


def test_each_key_accepts_only_its_own_algorithm() -> None:
    ed_key = asymmetric_key(pem(ed25519_key()))
    access = AccessTokens(ed_key, "scoreboard", "scoreboard", TTL, previous=[symmetric_key(SECRET)])
    hs_with_ed_kid = jwt.encode(claims(), SECRET, algorithm="HS256", headers={"kid": ed_key.kid})

    with pytest.raises(InvalidToken, match="algorithm not allowed"):
        access.verify(hs_with_ed_kid, time.time())
