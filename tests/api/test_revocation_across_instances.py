"""Revocation holds on every instance within one second: a logout on instance A makes the token
401 on instance B, even though B has verified (and cached) the token before."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from scoreboard.config import Settings
from tests.api.support import assert_problem
from tests.backends import REDIS_URL, require
from tests.conftest import Api
from tests.isolation import delete_redis_prefix, unique
from tests.postgres_support import private_database

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture
async def pair(make_api: Callable[..., Any], settings: Settings) -> AsyncIterator[tuple[Api, Api]]:
    require("postgres")
    require("redis")
    prefix = unique("test")
    try:
        async with private_database() as database:
            shared = {"database_url": database, "redis_url": REDIS_URL, "redis_prefix": prefix}
            yield await make_api(settings, **shared), await make_api(settings, **shared)
    finally:
        await delete_redis_prefix(prefix)


async def test_logout_on_one_instance_refuses_the_token_on_the_other_within_a_second(
    pair: tuple[Api, Api],
) -> None:
    first, second = pair
    alice = await first.user()
    accepted = await second.http.post("/api/actions", json={"type": "default"}, headers=alice.auth)
    assert accepted.status_code == 201, "B has verified and cached the token"

    logout = await first.http.post("/api/auth/logout", headers=alice.auth)
    logged_out_at = time.monotonic()
    statuses = []
    while time.monotonic() - logged_out_at < 1.0:
        response = await second.http.post("/api/actions", json={"type": "default"}, headers=alice.auth)
        statuses.append(response.status_code)
        if response.status_code == 401:
            break

    assert logout.status_code == 204
    assert statuses[-1] == 401, f"still accepted on B one second after logout: {statuses}"
    assert_problem(response, 401, "unauthenticated")
    assert "revoked" in response.json()["detail"]
