"""The shortest happy path through the API, as a first check that the wiring holds."""

from __future__ import annotations

import asyncio

from tests.conftest import Api


async def test_completed_action_raises_score_once_and_shows_on_board(api: Api) -> None:
    alice = await api.user()
    action_id = await api.ticket(alice)

    first = await api.update(alice, action_id)
    second = await api.update(alice, action_id)
    board = await api.http.get("/api/leaderboard")

    assert first.status_code == 200
    assert first.json() == {"message": "Score updated successfully.", "new_score": 1, "rank": 1}
    assert second.status_code == 409
    assert second.json()["code"] == "duplicate_action"
    assert second.json()["score"] == 1
    assert board.json()["entries"] == [
        {"rank": 1, "user_id": alice.user_id, "display_name": alice.username, "score": 1}
    ]


async def test_the_embedded_board_keeps_its_epoch_while_the_relay_runs(api: Api) -> None:
    before = (await api.http.get("/api/leaderboard")).json()["epoch"]
    await asyncio.sleep(2.5)  # the outbox relay ticks every second and checks the cache
    assert (await api.http.get("/api/leaderboard")).json()["epoch"] == before
