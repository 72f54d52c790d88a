"""The shortest happy path through the API, as a first check that the wiring holds."""

from __future__ import annotations

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
