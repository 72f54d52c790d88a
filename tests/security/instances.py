"""Helpers for the attacks: clients at chosen addresses, and two app instances sharing PostgreSQL
and Redis (as behind a load balancer), so that limits are shown to hold across instances."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx

from scoreboard.config import Settings
from tests.backends import REDIS_URL, require
from tests.conftest import PASSWORD, Api
from tests.isolation import delete_redis_prefix, unique
from tests.postgres_support import private_database


@asynccontextmanager
async def client_at(api: Api, address: str, scheme: str = "http") -> AsyncIterator[httpx.AsyncClient]:
    """A client of `api`'s app whose connections come from `address`."""
    transport = httpx.ASGITransport(app=api.app, client=(address, 50000))
    async with httpx.AsyncClient(transport=transport, base_url=f"{scheme}://testserver") as client:
        yield client


@asynccontextmanager
async def two_instances(
    make_api: Callable[..., Any], settings: Settings, **overrides: Any
) -> AsyncIterator[tuple[Api, Api]]:
    """Two apps on one private PostgreSQL database and one Redis key prefix."""
    require("postgres")
    require("redis")
    prefix = unique("security")
    try:
        async with private_database() as url:
            shared = {"database_url": url, "redis_url": REDIS_URL, "redis_prefix": prefix, **overrides}
            yield await make_api(settings, **shared), await make_api(settings, **shared)
    finally:
        await delete_redis_prefix(prefix)


async def login(client: httpx.AsyncClient, username: str, password: str = PASSWORD) -> httpx.Response:
    return await client.post("/api/auth/login", json={"username": username, "password": password})
