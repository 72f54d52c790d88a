"""One fixture per port, parametrized over every adapter of that port.

Each factory is an async context manager that yields a ready adapter and cleans up after it. A new
adapter joins the suite by adding one entry to its port's table, e.g. "postgres" for the Store (a
private database on 127.0.0.1:5432) or "redis" for the Leaderboard, RateLimiter and Revocations (a
private key prefix on 127.0.0.1:6379); every contract test then runs against it too.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import pytest
from redis.asyncio import Redis

from scoreboard.leaderboard.base import Leaderboard
from scoreboard.leaderboard.memory import MemoryLeaderboard
from scoreboard.limiter.base import RateLimiter
from scoreboard.limiter.memory import MemoryRateLimiter
from scoreboard.revocations.base import Revocations
from scoreboard.revocations.memory import MemoryRevocations
from scoreboard.store.base import Store
from scoreboard.store.sqlite import SqliteStore
from tests.backends import REDIS_URL, require
from tests.isolation import delete_redis_prefix, unique
from tests.postgres_support import private_database


@asynccontextmanager
async def sqlite_store(tmp_path: Path) -> AsyncIterator[Store]:
    yield SqliteStore(tmp_path / "contract.db")


@asynccontextmanager
async def postgres_store(tmp_path: Path) -> AsyncIterator[Store]:
    """A PostgresStore on a private database of the machine's PostgreSQL, dropped afterwards."""
    from scoreboard.store.postgres import PostgresStore

    async with private_database() as url:
        yield PostgresStore(url)


@asynccontextmanager
async def memory_leaderboard(tmp_path: Path) -> AsyncIterator[Leaderboard]:
    board = MemoryLeaderboard()
    await board.rebuild([])  # built, as the app's lifespan leaves it
    yield board


@asynccontextmanager
async def redis_leaderboard(tmp_path: Path) -> AsyncIterator[Leaderboard]:
    """A RedisLeaderboard on the machine's Redis under a private key prefix, emptied afterwards."""
    require("redis")
    from scoreboard.leaderboard.redis import RedisLeaderboard

    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    board = RedisLeaderboard.from_url(REDIS_URL, prefix=prefix)
    await board.rebuild([])  # ready, like a fresh MemoryLeaderboard
    try:
        yield board
    finally:
        client = Redis.from_url(REDIS_URL)
        keys = [key async for key in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
        await board.close()


@asynccontextmanager
async def memory_limiter(tmp_path: Path) -> AsyncIterator[RateLimiter]:
    yield MemoryRateLimiter()


@asynccontextmanager
async def memory_revocations(tmp_path: Path) -> AsyncIterator[Revocations]:
    yield MemoryRevocations()


@asynccontextmanager
async def redis_limiter(tmp_path: Path) -> AsyncIterator[RateLimiter]:
    require("redis")
    from scoreboard.limiter.redis import RedisRateLimiter

    prefix = unique()
    limiter = RedisRateLimiter.from_url(REDIS_URL, prefix=prefix)
    try:
        yield limiter
    finally:
        await limiter.close()
        await delete_redis_prefix(prefix)


@asynccontextmanager
async def redis_revocations(tmp_path: Path) -> AsyncIterator[Revocations]:
    require("redis")
    from scoreboard.revocations.redis import RedisRevocations

    prefix = unique()
    revocations = RedisRevocations.from_url(REDIS_URL, prefix=prefix)
    try:
        yield revocations
    finally:
        await revocations.close()
        await delete_redis_prefix(prefix)


# Store factories yield the adapter unopened, so the migration contract can watch `migrate` run.
STORES: dict[str, Callable[[Path], AbstractAsyncContextManager[Store]]] = {
    "sqlite": sqlite_store,
    "postgres": postgres_store,
}
LEADERBOARDS: dict[str, Callable[[Path], AbstractAsyncContextManager[Leaderboard]]] = {
    "memory": memory_leaderboard,
    "redis": redis_leaderboard,
}
LIMITERS: dict[str, Callable[[Path], AbstractAsyncContextManager[RateLimiter]]] = {
    "memory": memory_limiter,
    "redis": redis_limiter,
}
REVOCATIONS: dict[str, Callable[[Path], AbstractAsyncContextManager[Revocations]]] = {
    "memory": memory_revocations,
    "redis": redis_revocations,
}


@pytest.fixture(params=list(STORES))
async def unopened_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    async with STORES[request.param](tmp_path) as adapter:
        yield adapter


@pytest.fixture
async def store(unopened_store: Store) -> AsyncIterator[Store]:
    await unopened_store.open()
    try:
        yield unopened_store
    finally:
        await unopened_store.close()


@pytest.fixture(params=list(LEADERBOARDS))
async def leaderboard(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Leaderboard]:
    async with LEADERBOARDS[request.param](tmp_path) as adapter:
        yield adapter


@pytest.fixture(params=list(LIMITERS))
async def limiter(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[RateLimiter]:
    async with LIMITERS[request.param](tmp_path) as adapter:
        yield adapter


@pytest.fixture(params=list(REVOCATIONS))
async def revocations(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Revocations]:
    async with REVOCATIONS[request.param](tmp_path) as adapter:
        yield adapter
