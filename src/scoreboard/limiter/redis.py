"""Rate limiting shared by every instance: the `limits` library's sliding-window counters in Redis.

Keys: `<prefix>limits:{LIMITS/<rule set>/<key>/<amount>/<multiple>/<granularity>}`, and the same
ending in `/-1` for the previous window; each expires with its window. Counting is atomic in Redis
(Lua), so a limit holds across instances. A `rediss://` URL encrypts the link (the TLS query
parameters are listed in broker/redis.py). While Redis is down the calls raise; the Throttle service
then fails open.
"""

from __future__ import annotations

from limits.aio.storage import RedisStorage
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

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

    @classmethod
    def from_url(cls, url: str, prefix: str = DEFAULT_PREFIX) -> RedisRateLimiter:
        """A limiter on `url` (`redis://…` or `rediss://…`); nothing connects until the first hit."""
        client = Redis.from_url(url, retry=_RETRY, socket_connect_timeout=2.0, socket_timeout=2.0)
        return cls(url, client, prefix)

    async def close(self) -> None:
        await self._client.aclose()
