"""The RateLimiter contract, run against every adapter."""

from __future__ import annotations

import asyncio
import uuid

from scoreboard.limiter.base import NO_STREAK, RateLimiter, Rules, Streak, Verdict

THREE_PER_MINUTE = Rules.parse("contract", "3/minute")


def key() -> str:
    return f"key-{uuid.uuid4()}"


async def hits(limiter: RateLimiter, rules: Rules, key: str, times: int) -> list[Verdict]:
    return [await limiter.hit(rules, key) for _ in range(times)]


async def test_hits_are_admitted_up_to_the_limit_then_refused(limiter: RateLimiter) -> None:
    k = key()

    admitted = await hits(limiter, THREE_PER_MINUTE, k, 3)
    refused = await limiter.hit(THREE_PER_MINUTE, k)

    assert all(v.allowed for v in admitted)
    assert not refused.allowed
    assert refused.limit == 3
    assert refused.remaining == 0
    assert 1 <= refused.reset_seconds <= 60


async def test_refusals_keep_being_refused(limiter: RateLimiter) -> None:
    k = key()
    await hits(limiter, THREE_PER_MINUTE, k, 3)

    assert not any(v.allowed for v in await hits(limiter, THREE_PER_MINUTE, k, 5))


async def test_peek_does_not_count(limiter: RateLimiter) -> None:
    k = key()

    peeks = [await limiter.peek(THREE_PER_MINUTE, k) for _ in range(10)]

    assert all(v.allowed for v in peeks)
    assert all(v.allowed for v in await hits(limiter, THREE_PER_MINUTE, k, 3))


async def test_peek_sees_an_exhausted_key(limiter: RateLimiter) -> None:
    k = key()
    await hits(limiter, THREE_PER_MINUTE, k, 3)

    verdict = await limiter.peek(THREE_PER_MINUTE, k)

    assert not verdict.allowed
    assert verdict.reset_seconds >= 1


async def test_reset_forgets_the_hits(limiter: RateLimiter) -> None:
    k = key()
    await hits(limiter, THREE_PER_MINUTE, k, 3)

    await limiter.reset(THREE_PER_MINUTE, k)

    assert all(v.allowed for v in await hits(limiter, THREE_PER_MINUTE, k, 3))
    assert not (await limiter.hit(THREE_PER_MINUTE, k)).allowed


async def test_keys_are_counted_separately(limiter: RateLimiter) -> None:
    first, second = key(), key()
    await hits(limiter, THREE_PER_MINUTE, first, 3)

    assert all(v.allowed for v in await hits(limiter, THREE_PER_MINUTE, second, 3))
    assert not (await limiter.hit(THREE_PER_MINUTE, first)).allowed


async def test_rule_sets_with_different_names_are_counted_separately(limiter: RateLimiter) -> None:
    k = key()
    other = Rules.parse("contract-other", "3/minute")
    await hits(limiter, THREE_PER_MINUTE, k, 3)

    assert (await limiter.hit(other, k)).allowed


async def test_the_tightest_of_several_rules_refuses(limiter: RateLimiter) -> None:
    k = key()
    rules = Rules.parse("contract-many", "100/minute;2/hour")

    await hits(limiter, rules, k, 2)
    refused = await limiter.hit(rules, k)

    assert not refused.allowed
    assert refused.limit == 2
    assert refused.reset_seconds >= 1


async def test_rules_that_are_off_never_refuse(limiter: RateLimiter) -> None:
    off = Rules.parse("contract-off", "off")

    assert all(v.allowed for v in await hits(limiter, off, key(), 50))
    assert (await limiter.peek(off, key())).allowed


# failure streaks (login back-off) -------------------------------------------------------------


async def test_strikes_count_up_and_remember_the_last_failure(limiter: RateLimiter) -> None:
    k = key()

    first = await limiter.strike(k, 1000.0, forget_after=60)
    second = await limiter.strike(k, 1005.5, forget_after=60)
    seen = await limiter.streak(k, 1006.0)

    assert (first.failures, second.failures) == (1, 2)
    assert seen == Streak(2, 1005.5)


async def test_a_key_without_failures_has_no_streak(limiter: RateLimiter) -> None:
    assert await limiter.streak(key(), 1000.0) == NO_STREAK


async def test_forgiving_ends_the_streak_of_that_key_only(limiter: RateLimiter) -> None:
    forgiven, kept = key(), key()
    for k in (forgiven, kept):
        await limiter.strike(k, 1000.0, forget_after=60)

    await limiter.forgive(forgiven)

    assert await limiter.streak(forgiven, 1001.0) == NO_STREAK
    assert (await limiter.streak(kept, 1001.0)).failures == 1
    assert (await limiter.strike(forgiven, 1002.0, forget_after=60)).failures == 1


async def test_concurrent_strikes_are_all_counted(limiter: RateLimiter) -> None:
    k = key()

    await asyncio.gather(*(limiter.strike(k, 1000.0, forget_after=60) for _ in range(20)))

    assert (await limiter.streak(k, 1000.0)).failures == 20
