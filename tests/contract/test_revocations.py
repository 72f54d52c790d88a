"""The Revocations contract, run against every adapter."""

from __future__ import annotations

import time
import uuid

from scoreboard.revocations.base import Revocations


def token_id() -> str:
    return str(uuid.uuid4())


async def test_revoked_token_is_revoked(revocations: Revocations) -> None:
    jti = token_id()

    await revocations.revoke(jti, int(time.time()) + 60)

    assert await revocations.is_revoked(jti)


async def test_unknown_token_is_not_revoked(revocations: Revocations) -> None:
    assert not await revocations.is_revoked(token_id())


async def test_revocation_that_already_expired_does_not_count(revocations: Revocations) -> None:
    jti = token_id()

    await revocations.revoke(jti, int(time.time()) - 5)

    assert not await revocations.is_revoked(jti)


async def test_revoking_one_token_leaves_the_others_alone(revocations: Revocations) -> None:
    kept, revoked = token_id(), token_id()

    await revocations.revoke(revoked, int(time.time()) + 60)

    assert await revocations.is_revoked(revoked)
    assert not await revocations.is_revoked(kept)


async def test_expired_revocations_do_not_disturb_live_ones(revocations: Revocations) -> None:
    now = int(time.time())
    live = token_id()
    await revocations.revoke(live, now + 60)
    for _ in range(20):
        await revocations.revoke(token_id(), now - 5)

    await revocations.revoke(token_id(), now + 60)

    assert await revocations.is_revoked(live)


async def test_banned_users_tokens_issued_up_to_the_moment_are_revoked(revocations: Revocations) -> None:
    now = int(time.time())

    await revocations.revoke_user("user-1", issued_up_to=now, until=now + 60)

    assert await revocations.is_revoked(token_id(), "user-1", issued_at=now)
    assert await revocations.is_revoked(token_id(), "user-1", issued_at=now - 100)
    assert not await revocations.is_revoked(token_id(), "user-1", issued_at=now + 1)
    assert not await revocations.is_revoked(token_id(), "user-2", issued_at=now)
    assert not await revocations.is_revoked(token_id())  # no user given: only the token id counts


async def test_user_revocation_that_already_expired_does_not_count(revocations: Revocations) -> None:
    now = int(time.time())

    await revocations.revoke_user("user-1", issued_up_to=now, until=now - 1)

    assert not await revocations.is_revoked(token_id(), "user-1", issued_at=now)


async def test_revoked_token_id_still_counts_when_the_user_is_given(revocations: Revocations) -> None:
    jti = token_id()

    await revocations.revoke(jti, int(time.time()) + 60)

    assert await revocations.is_revoked(jti, "user-1", issued_at=int(time.time()))
