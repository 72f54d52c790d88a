"""Revocations shared by every instance: one Redis key per revoked token, gone when the token expires.

`SET <prefix>revoked:<jti> 1 EXAT <expires_at>` on logout; a ban sets
`<prefix>revoked-user:<user_id>` to the last `iat` it refuses, until the last such token expires.
Every request reads both keys with one `MGET` — so a logout or a ban holds on every instance at
once, and Redis forgets each entry exactly when the tokens it refuses would be refused anyway. A `rediss://` URL encrypts the link (the TLS query parameters are listed in broker/redis.py).
"""

from __future__ import annotations

import time

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

DEFAULT_PREFIX = "scoreboard:"

# A pooled connection is found dead only when used (e.g. after Redis restarted): try again on a new one.
_RETRY = Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), retries=2)


class RedisRevocations:
    def __init__(self, client: Redis, prefix: str = DEFAULT_PREFIX) -> None:
        self._redis = client
        self._prefix = prefix

    @classmethod
    def from_url(cls, url: str, prefix: str = DEFAULT_PREFIX) -> RedisRevocations:
        """Revocations on `url` (`redis://…` or `rediss://…`); nothing connects until first used."""
        client = Redis.from_url(url, retry=_RETRY, socket_connect_timeout=2.0, socket_timeout=2.0)
        return cls(client, prefix)

    def key(self, token_id: str) -> str:
        return f"{self._prefix}revoked:{token_id}"

    async def revoke(self, token_id: str, expires_at: int) -> None:
        if expires_at <= time.time():
            return  # already refused as expired; EXAT in the past would be an error or a no-op
        await self._redis.set(self.key(token_id), 1, exat=expires_at)

    def user_key(self, user_id: str) -> str:
        return f"{self._prefix}revoked-user:{user_id}"

    async def revoke_user(self, user_id: str, issued_up_to: int, until: int) -> None:
        if until <= time.time():
            return
        await self._redis.set(self.user_key(user_id), issued_up_to, exat=until)

    async def is_revoked(self, token_id: str, user_id: str = "", issued_at: int = 0) -> bool:
        if not user_id:
            return bool(await self._redis.exists(self.key(token_id)))
        token, user = await self._redis.mget(self.key(token_id), self.user_key(user_id))
        return token is not None or (user is not None and issued_at <= int(user))

    async def close(self) -> None:
        await self._redis.aclose()
