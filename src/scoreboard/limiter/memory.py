"""In-process rate limiting: exact for one process, the embedded default."""

from __future__ import annotations

import math
import time

from limits import RateLimitItem
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from scoreboard.limiter.base import ALLOWED, Rules, Verdict


class LimitsRateLimiter:
    """RateLimiter over any `limits` async storage (memory here, Redis in limiter/redis.py)."""

    def __init__(self, storage: Storage | None = None) -> None:
        self._storage = storage or MemoryStorage()
        self._strategy = SlidingWindowCounterRateLimiter(self._storage)

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

    async def close(self) -> None:
        return None

    async def _refusal(self, rules: Rules, item: RateLimitItem, key: str) -> Verdict:
        stats = await self._strategy.get_window_stats(item, rules.name, key)
        wait = max(1, math.ceil(stats.reset_time - time.time()))
        return Verdict(False, item.amount, stats.remaining, wait)


MemoryRateLimiter = LimitsRateLimiter
