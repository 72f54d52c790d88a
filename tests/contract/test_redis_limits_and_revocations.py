"""The Redis RateLimiter and Revocations beyond the port contract: they are shared by every instance,
keep to their key prefix, expire with what they guard, survive a Redis restart and work over TLS."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from scoreboard.limiter.base import Rules
from scoreboard.limiter.redis import RedisRateLimiter
from scoreboard.revocations.redis import RedisRevocations
from tests.backends import REDIS_URL, require
from tests.faults import PrivateRedis, TlsFiles
from tests.isolation import delete_redis_prefix, unique

pytestmark = pytest.mark.redis

THREE_PER_MINUTE = Rules.parse("shared", "3/minute")


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    require("redis")
    name = unique()
    yield name
    await delete_redis_prefix(name)


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


async def test_a_limit_holds_across_instances(prefix: str) -> None:
    first = RedisRateLimiter.from_url(REDIS_URL, prefix=prefix)
    second = RedisRateLimiter.from_url(REDIS_URL, prefix=prefix)
    try:
        assert (await first.hit(THREE_PER_MINUTE, "client")).allowed
        assert (await second.hit(THREE_PER_MINUTE, "client")).allowed
        assert (await first.hit(THREE_PER_MINUTE, "client")).allowed

        assert not (await second.hit(THREE_PER_MINUTE, "client")).allowed
        assert not (await first.peek(THREE_PER_MINUTE, "client")).allowed
    finally:
        await first.close()
        await second.close()


async def test_limiter_keys_stay_under_the_prefix_and_expire(prefix: str, redis: Redis) -> None:
    limiter = RedisRateLimiter.from_url(REDIS_URL, prefix=prefix)
    try:
        await limiter.hit(THREE_PER_MINUTE, f"client-{uuid.uuid4()}")
    finally:
        await limiter.close()

    keys = [key async for key in redis.scan_iter(match=f"{prefix}*")]
    assert keys
    assert all(key.startswith(f"{prefix}limits:".encode()) for key in keys)
    assert all(0 < ttl <= 120 for ttl in [await redis.ttl(key) for key in keys])


async def test_a_logout_holds_on_every_instance_at_once(prefix: str) -> None:
    on_logout, elsewhere = (RedisRevocations.from_url(REDIS_URL, prefix=prefix) for _ in range(2))
    try:
        await on_logout.revoke("jti-1", int(time.time()) + 60)

        assert await elsewhere.is_revoked("jti-1")
        assert not await elsewhere.is_revoked("jti-2")
    finally:
        await on_logout.close()
        await elsewhere.close()


async def test_a_revocation_is_forgotten_exactly_when_the_token_expires(prefix: str, redis: Redis) -> None:
    revocations = RedisRevocations.from_url(REDIS_URL, prefix=prefix)
    expires_at = int(time.time()) + 600
    try:
        await revocations.revoke("jti-1", expires_at)
    finally:
        await revocations.close()

    assert await redis.expiretime(f"{prefix}revoked:jti-1") == expires_at


async def test_a_token_revoked_for_one_second_is_refused_then_forgotten(prefix: str) -> None:
    revocations = RedisRevocations.from_url(REDIS_URL, prefix=prefix)
    try:
        await revocations.revoke("jti-1", int(time.time()) + 1)
        assert await revocations.is_revoked("jti-1")

        deadline = time.monotonic() + 3
        while await revocations.is_revoked("jti-1") and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert not await revocations.is_revoked("jti-1")
    finally:
        await revocations.close()


async def test_limiter_and_revocations_work_again_after_redis_restarts(private_redis: PrivateRedis) -> None:
    limiter = RedisRateLimiter.from_url(private_redis.url, prefix="p:")
    revocations = RedisRevocations.from_url(private_redis.url, prefix="p:")
    try:
        await limiter.hit(THREE_PER_MINUTE, "client")
        await revocations.revoke("jti-1", int(time.time()) + 60)

        private_redis.kill()
        with pytest.raises((RedisConnectionError, OSError)):
            await revocations.is_revoked("jti-1")  # the app fails open and logs it
        private_redis.start()

        assert (await limiter.hit(THREE_PER_MINUTE, "client")).allowed
        await revocations.revoke("jti-2", int(time.time()) + 60)
        assert await revocations.is_revoked("jti-2")
        assert not await revocations.is_revoked("jti-1")  # a server without persistence forgets
    finally:
        await limiter.close()
        await revocations.close()


async def test_limiter_and_revocations_work_over_tls(tmp_path: Path) -> None:
    server = PrivateRedis(tmp_path, tls=TlsFiles.create(tmp_path))
    server.start()
    limiter = RedisRateLimiter.from_url(server.url, prefix="p:")
    revocations = RedisRevocations.from_url(server.url, prefix="p:")
    try:
        assert server.url.startswith("rediss://")
        assert all([(await limiter.hit(THREE_PER_MINUTE, "client")).allowed for _ in range(3)])
        assert not (await limiter.hit(THREE_PER_MINUTE, "client")).allowed
        await revocations.revoke("jti-1", int(time.time()) + 60)
        assert await revocations.is_revoked("jti-1")
    finally:
        await limiter.close()
        await revocations.close()
        server.kill()
