"""Rate limiting shared by every instance: the `limits` library's sliding-window counters in Redis.

Keys: `<prefix>limits:{LIMITS/<rule set>/<key>/<amount>/<multiple>/<granularity>}`, and the same
ending in `/-1` for the previous window; each expires with its window. Counting is atomic in Redis
(Lua), so a limit holds across instances. Failure streaks (login back-off) are hashes
`<prefix>strikes:<key>` with fields `n` and `last`, expiring `forget_after` seconds after the last
failure. A `rediss://` URL encrypts the link (the TLS query parameters are listed in broker/redis.py).
While Redis is down the calls raise; the Throttle service then fails open.
"""

from __future__ import annotations

from limits.aio.storage import RedisStorage
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

from scoreboard.limiter.base import NO_STREAK, Streak
from scoreboard.limiter.memory import LimitsRateLimiter

DEFAULT_PREFIX = "scoreboard:"

# A pooled connection is found dead only when used (e.g. after Redis restarted): try again on a new one.
_RETRY = Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), retries=2)


class RedisRateLimiter(LimitsRateLimiter):
    def __init__(self, url: str, client: Redis, prefix: str = DEFAULT_PREFIX) -> None:
        storage = RedisStorage(
            f"async+{url}",
            implementation="redispy",
            key_prefix=f"{prefix}limits",
            # limits annotates **options as scalars, but hands them to redis-py, which takes a pool:
            # sharing our client's pool lets close() release every connection.
            connection_pool=client.connection_pool,  # type: ignore[arg-type]
        )
        super().__init__(storage)
        self._client = client
        self._strikes = f"{prefix}strikes:"

    @classmethod
    def from_url(cls, url: str, prefix: str = DEFAULT_PREFIX) -> RedisRateLimiter:
        """A limiter on `url` (`redis://…` or `rediss://…`); nothing connects until the first hit."""
        client = Redis.from_url(url, retry=_RETRY, socket_connect_timeout=2.0, socket_timeout=2.0)
        return cls(url, client, prefix)

    async def strike(self, key: str, now: float, forget_after: int) -> Streak:
        name = self._strikes + key
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.hincrby(name, "n", 1)
            pipe.hset(name, "last", repr(now))
            pipe.expire(name, forget_after)
            failures, *_ = await pipe.execute()
        return Streak(int(failures), now)

    async def streak(self, key: str, now: float) -> Streak:
        failures, last = await self._client.hmget(self._strikes + key, ["n", "last"])
        if failures is None or last is None:
            return NO_STREAK
        return Streak(int(failures), float(last))

    async def forgive(self, key: str) -> None:
        await self._client.delete(self._strikes + key)

    async def close(self) -> None:
        await self._client.aclose()
