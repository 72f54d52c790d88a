"""Exactly-once under concurrency, against the real SQLite store and its group-commit writer."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

from scoreboard.config import Settings
from scoreboard.domain.actions import ActionPolicy
from tests.api.support import SUCCESS, database, stored_score
from tests.conftest import Api

CONCURRENT = 50


async def test_fifty_concurrent_requests_with_one_action_id_give_one_200_and_49_conflicts(
    api: Api, settings: Settings
) -> None:
    alice = await api.user()
    await api.earn(alice, 2)
    action_id = await api.ticket(alice)

    responses = await asyncio.gather(*(api.update(alice, action_id) for _ in range(CONCURRENT)))

    assert Counter(r.status_code for r in responses) == {200: 1, 409: CONCURRENT - 1}
    winner = next(r for r in responses if r.status_code == 200)
    assert winner.json() == {"message": SUCCESS, "new_score": 3, "rank": 1}
    for loser in (r for r in responses if r.status_code == 409):
        assert loser.json()["code"] == "duplicate_action"
        assert loser.json()["score"] == 3
    assert stored_score(settings, alice.user_id) == 3
    assert (await api.http.get(f"/api/users/{alice.user_id}/score")).json()["score"] == 3


async def test_fifty_concurrent_requests_with_one_new_id_under_the_open_policy_apply_once(
    make_api: Callable[..., Any], settings: Settings
) -> None:
    api: Api = await make_api(settings, action_policy=ActionPolicy.OPEN)
    alice = await api.user()
    action_id = str(uuid.uuid4())

    responses = await asyncio.gather(*(api.update(alice, action_id) for _ in range(CONCURRENT)))

    assert Counter(r.status_code for r in responses) == {200: 1, 409: CONCURRENT - 1}
    assert stored_score(settings, alice.user_id) == 1
    with database(settings) as conn:
        rows = conn.execute("SELECT count(*) FROM action_log WHERE action_id = ?", (action_id,)).fetchone()[0]
    assert rows == 1


async def test_concurrent_duplicates_of_many_actions_each_apply_once(api: Api, settings: Settings) -> None:
    alice = await api.user()
    tickets = [await api.ticket(alice) for _ in range(5)]

    responses = await asyncio.gather(*(api.update(alice, t) for t in tickets for _ in range(10)))

    assert Counter(r.status_code for r in responses) == {200: 5, 409: 45}
    assert sorted(r.json()["new_score"] for r in responses if r.status_code == 200) == [1, 2, 3, 4, 5]
    assert stored_score(settings, alice.user_id) == 5


async def test_many_users_updating_concurrently_all_succeed_with_correct_scores(
    api: Api, settings: Settings
) -> None:
    users = await asyncio.gather(*(api.user() for _ in range(8)))
    plan = [(user, await api.ticket(user)) for i, user in enumerate(users) for _ in range(i + 1)]

    responses = await asyncio.gather(*(api.update(user, action_id) for user, action_id in plan))

    assert [r.status_code for r in responses] == [200] * len(plan)
    for i, user in enumerate(users):
        assert stored_score(settings, user.user_id) == i + 1
        standing = (await api.http.get(f"/api/users/{user.user_id}/score")).json()
        assert standing["score"] == i + 1
        assert standing["rank"] == len(users) - i
    board = (await api.http.get("/api/leaderboard")).json()
    assert [e["user_id"] for e in board["entries"]] == [u.user_id for u in reversed(users)]
