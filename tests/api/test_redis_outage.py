"""The cache may vanish, the truth may not: Redis killed mid-run and brought back empty.

Invariants checked: no accepted update lost, nothing applied twice, reads keep answering from the
Store while Redis is away, and the board converges to the Store's truth (under a new epoch) once
Redis returns.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from scoreboard.config import Settings
from scoreboard.domain.actions import ActionPolicy
from tests.conftest import Api, User
from tests.faults import PrivateRedis

pytestmark = pytest.mark.redis


async def update_ok(api: Api, user: User) -> int:
    response = await api.update(user, str(uuid.uuid4()))
    assert response.status_code == 200, response.text
    return int(response.json()["new_score"])


async def board_when(api: Api, ready: Callable[[dict[str, Any]], bool], within: float) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        board: dict[str, Any] = (await api.http.get("/api/leaderboard")).json()
        if ready(board) or time.monotonic() > deadline:
            return board
        await asyncio.sleep(0.2)


def scores(board: dict[str, Any]) -> dict[str, int]:
    return {entry["user_id"]: entry["score"] for entry in board["entries"]}


async def test_redis_lost_and_back_empty_loses_nothing_and_the_board_converges(
    make_api: Callable[..., Any], settings: Settings, private_redis: PrivateRedis
) -> None:
    redis = private_redis
    api: Api = await make_api(settings, redis_url=redis.url, action_policy=ActionPolicy.OPEN)
    alice, bob = await api.user(), await api.user()
    for _ in range(3):
        await update_ok(api, alice)
    before = (await api.http.get("/api/leaderboard")).json()
    assert scores(before) == {alice.user_id: 3}

    redis.kill()
    during = [await update_ok(api, bob) for _ in range(4)]
    fallback = (await api.http.get("/api/leaderboard")).json()
    bob_score = (await api.http.get(f"/api/users/{bob.user_id}/score")).json()

    redis.start()  # same port, nothing kept
    after = await board_when(
        api, lambda b: b["epoch"] not in (0, before["epoch"]) and len(b["entries"]) == 2, within=15
    )
    await update_ok(api, alice)
    latest = (await api.http.get("/api/leaderboard")).json()

    assert during == [1, 2, 3, 4], "updates keep being accepted while the cache is away"
    assert scores(fallback) == {alice.user_id: 3, bob.user_id: 4}, "reads fall back to the Store"
    assert bob_score["score"] == 4
    assert bob_score["rank"] == 1
    assert scores(after) == {alice.user_id: 3, bob.user_id: 4}, "the rebuilt cache is the Store's truth"
    assert after["epoch"] > before["epoch"]
    assert scores(latest) == {alice.user_id: 4, bob.user_id: 4}
    assert latest["seq"] == after["seq"] + 1
