"""Access tokens: a round trip, and every reason a token is refused."""

from __future__ import annotations

import time
import uuid

import jwt
import pytest

from scoreboard.auth.keys import symmetric_key
from scoreboard.auth.tokens import LEEWAY_SECONDS, AccessTokens, InvalidToken
from scoreboard.domain.model import Principal

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


def test_token_signed_with_another_key_is_refused() -> None:
    issued = tokens(secret=OTHER_SECRET).issue("user-1", ["user"], "s", int(time.time()))

    assert reason(issued.token) == "bad signature"


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
