"""In-process rate limiting: exact for one process, the embedded default."""

from __future__ import annotations

import math
import time

from limits import RateLimitItem
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from scoreboard.limiter.base import ALLOWED, NO_STREAK, Rules, Streak, Verdict


class LimitsRateLimiter:
    """RateLimiter over any `limits` async storage (memory here, Redis in limiter/redis.py); failure
    streaks are kept in this process (the Redis adapter overrides them)."""

    def __init__(self, storage: Storage | None = None) -> None:
        self._storage = storage or MemoryStorage()
        self._strategy = SlidingWindowCounterRateLimiter(self._storage)
        self._streaks: dict[str, tuple[Streak, float]] = {}
        self._sweep_at = _STREAKS_BEFORE_SWEEP

    async def hit(self, rules: Rules, key: str) -> Verdict:
        for item in rules.items:
            if not await self._strategy.hit(item, rules.name, key):
                return await self._refusal(rules, item, key)
        return ALLOWED

    async def peek(self, rules: Rules, key: str) -> Verdict:
        for item in rules.items:
            if not await self._strategy.test(item, rules.name, key):
                return await self._refusal(rules, item, key)
        return ALLOWED

    async def reset(self, rules: Rules, key: str) -> None:
        for item in rules.items:
            await self._strategy.clear(item, rules.name, key)

    async def strike(self, key: str, now: float, forget_after: int) -> Streak:
        streak = Streak((await self.streak(key, now)).failures + 1, now)
        self._streaks[key] = (streak, now + forget_after)
        if len(self._streaks) > self._sweep_at:
            self._sweep(now)
        return streak

    async def streak(self, key: str, now: float) -> Streak:
        kept = self._streaks.get(key)
        if kept is None or kept[1] <= now:
            return NO_STREAK
        return kept[0]

    async def forgive(self, key: str) -> None:
        self._streaks.pop(key, None)

    async def close(self) -> None:
        return None

    async def _refusal(self, rules: Rules, item: RateLimitItem, key: str) -> Verdict:
        stats = await self._strategy.get_window_stats(item, rules.name, key)
        wait = max(1, math.ceil(stats.reset_time - time.time()))
        return Verdict(False, item.amount, stats.remaining, wait, item.get_expiry())

    def _sweep(self, now: float) -> None:
        """Drop forgotten streaks, so that a spray of usernames cannot grow the map without bound."""
        self._streaks = {k: kept for k, kept in self._streaks.items() if kept[1] > now}
        self._sweep_at = max(_STREAKS_BEFORE_SWEEP, 2 * len(self._streaks))


# Sweeping is O(n); sweeping only when the map has doubled keeps the cost per failure constant on average.
_STREAKS_BEFORE_SWEEP = 10_000

MemoryRateLimiter = LimitsRateLimiter
