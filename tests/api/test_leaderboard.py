"""Reading the board: GET /api/leaderboard and GET /api/users/{user_id}/score."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from scoreboard.config import Settings
from tests.api.support import assert_problem, bearer, forge, shared_loop
from tests.conftest import Api, User


async def quick_users(api: Api, count: int) -> list[User]:
    """Registered users holding a valid token made without a login (one password hash each)."""
    accounts = await asyncio.gather(*(api.register() for _ in range(count)))
    return [User(a["user_id"], a["username"], forge(a["user_id"]), {}) for a in accounts]


async def board(api: Api, query: str = "") -> dict[str, Any]:
    response = await api.http.get(f"/api/leaderboard{query}")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    return body


def ids(body: dict[str, Any]) -> list[str]:
    return [entry["user_id"] for entry in body["entries"]]


async def test_empty_board_has_epoch_seq_and_no_entries(api: Api) -> None:
    body = await board(api)

    assert set(body) == {"epoch", "seq", "entries"}
    assert isinstance(body["epoch"], int)
    assert body["seq"] == 0
    assert body["entries"] == []


async def test_board_shows_the_top_10_by_default_and_honours_limit(api: Api) -> None:
    users = await quick_users(api, 12)
    for user in users:
        await api.earn(user)

    default = await board(api)
    one = await board(api, "?limit=1")
    all_of_them = await board(api, "?limit=100")

    assert ids(default) == [u.user_id for u in users[:10]]
    assert [e["rank"] for e in default["entries"]] == list(range(1, 11))
    assert default["entries"][0] == {
        "rank": 1,
        "user_id": users[0].user_id,
        "display_name": users[0].username,
        "score": 1,
    }
    assert ids(one) == [users[0].user_id]
    assert ids(all_of_them) == [u.user_id for u in users]


@shared_loop
@pytest.mark.parametrize("limit", ["0", "101", "-1", "abc", "1.5", "", "1e2"])
async def test_limit_outside_1_to_100_is_400_never_422(shared_api: Api, limit: str) -> None:
    response = await shared_api.http.get(f"/api/leaderboard?limit={limit}")

    assert_problem(response, 400, "invalid_request")


async def test_order_is_score_descending_with_ties_to_who_reached_the_score_first(api: Api) -> None:
    alice, bob = await quick_users(api, 2)

    await api.earn(alice)
    await api.earn(bob)
    tie_at_one = ids(await board(api))
    await api.earn(bob)
    bob_ahead = ids(await board(api))
    await api.earn(alice)
    tie_at_two = await board(api)

    assert tie_at_one == [alice.user_id, bob.user_id]
    assert bob_ahead == [bob.user_id, alice.user_id]
    assert ids(tie_at_two) == [bob.user_id, alice.user_id]
    assert [(e["rank"], e["score"]) for e in tie_at_two["entries"]] == [(1, 2), (2, 2)]


async def test_users_with_zero_score_never_appear(api: Api) -> None:
    idle, active = await quick_users(api, 2)
    await api.earn(active)

    body = await board(api, "?limit=100")

    assert ids(body) == [active.user_id]
    assert idle.user_id not in ids(body)


async def test_seq_rises_by_one_only_when_the_top_10_changes(api: Api) -> None:
    users = await quick_users(api, 11)
    top, outsider = users[:10], users[10]
    for user in top:
        await api.earn(user, 2)
    before = await board(api)

    await api.earn(outsider)  # 1 point: rank 11
    outside_once = await board(api)
    await api.earn(top[0])  # the leader's score changes
    leader_scored = await board(api)
    await api.earn(outsider)  # 2 points, but nine others reached 2 first: rank 11
    outside_twice = await board(api)
    await api.earn(outsider)  # 3 points: rank 2, into the top 10
    entered = await board(api)

    assert before["seq"] >= 1
    assert outside_once["seq"] == before["seq"]
    assert leader_scored["seq"] == before["seq"] + 1
    assert outside_twice["seq"] == leader_scored["seq"]
    assert entered["seq"] == leader_scored["seq"] + 1
    assert {b["epoch"] for b in (before, outside_once, leader_scored, outside_twice, entered)} == {
        before["epoch"]
    }
    assert outsider.user_id not in ids(outside_twice)
    assert ids(entered)[:2] == [top[0].user_id, outsider.user_id]
    assert top[9].user_id not in ids(entered)
    standing = (await api.http.get(f"/api/users/{top[9].user_id}/score")).json()
    assert standing["rank"] == 11


async def test_a_duplicate_or_refused_update_does_not_move_seq(api: Api) -> None:
    alice, bob = await quick_users(api, 2)
    action_id = await api.ticket(alice)
    await api.update(alice, action_id)
    before = await board(api)

    duplicate = await api.update(alice, action_id)
    forbidden = await api.update(bob, await api.ticket(alice))
    after = await board(api)

    assert duplicate.status_code == 409
    assert forbidden.status_code == 403
    assert after["seq"] == before["seq"]


async def test_restart_rebuilds_the_same_board_from_the_store_in_a_new_epoch(
    make_api: Callable[..., Any], settings: Settings
) -> None:
    api: Api = await make_api(settings)
    alice, bob = await quick_users(api, 2)
    await api.earn(bob)
    await api.earn(alice, 2)
    before = await board(api)

    restarted: Api = await make_api(settings)
    after = await board(restarted)

    assert after["entries"] == before["entries"]
    assert after["epoch"] != before["epoch"]
    assert after["seq"] == 0


# a user's standing ----------------------------------------------------------------------------


async def test_user_score_has_score_display_name_and_rank(api: Api) -> None:
    alice, bob = await quick_users(api, 2)
    await api.earn(alice, 2)
    await api.earn(bob, 1)

    response = await api.http.get(f"/api/users/{bob.user_id}/score")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"user_id": bob.user_id, "display_name": bob.username, "score": 1, "rank": 2}


async def test_user_score_rank_is_null_while_the_score_is_zero(api: Api) -> None:
    account = await api.register(display_name="Idle Ida")

    response = await api.http.get(f"/api/users/{account['user_id']}/score")

    assert response.status_code == 200
    assert response.json() == {
        "user_id": account["user_id"],
        "display_name": "Idle Ida",
        "score": 0,
        "rank": None,
    }


async def test_unknown_user_is_404(api: Api) -> None:
    response = await api.http.get(f"/api/users/{uuid.uuid4()}/score")

    assert_problem(response, 404, "not_found")


@shared_loop
@pytest.mark.parametrize(
    "user_id",
    [
        "abc",
        "4F8A0D2C-1B3E-4C5D-8E9F-0A1B2C3D4E5F",
        "4f8a0d2c1b3e4c5d8e9f0a1b2c3d4e5f",
        "%7B4f8a0d2c-1b3e-4c5d-8e9f-0a1b2c3d4e5f%7D",
        "urn:uuid:4f8a0d2c-1b3e-4c5d-8e9f-0a1b2c3d4e5f",
        "4f8a0d2c-1b3e-4c5d-8e9f-0a1b2c3d4e5f%0A",
    ],
)
async def test_user_score_for_a_non_canonical_id_is_400(shared_api: Api, user_id: str) -> None:
    response = await shared_api.http.get(f"/api/users/{user_id}/score")

    assert_problem(response, 400, "invalid_request")


# private boards -------------------------------------------------------------------------------


async def test_private_board_refuses_anonymous_reads_and_serves_authenticated_ones(
    make_api: Callable[..., Any], settings: Settings
) -> None:
    api: Api = await make_api(settings, public_scoreboard=False)
    (alice,) = await quick_users(api, 1)
    await api.earn(alice)
    score_path = f"/api/users/{alice.user_id}/score"

    anonymous_board = await api.http.get("/api/leaderboard")
    anonymous_score = await api.http.get(score_path)
    bad_token_board = await api.http.get("/api/leaderboard", headers=bearer("garbage"))
    signed_in_board = await api.http.get("/api/leaderboard", headers=alice.auth)
    signed_in_score = await api.http.get(score_path, headers=alice.auth)

    assert_problem(anonymous_board, 401, "unauthenticated")
    assert_problem(anonymous_score, 401, "unauthenticated")
    assert_problem(bad_token_board, 401, "unauthenticated")
    assert ids(signed_in_board.json()) == [alice.user_id]
    assert signed_in_score.json()["score"] == 1


async def test_public_board_serves_anonymous_reads(api: Api) -> None:
    (alice,) = await quick_users(api, 1)
    await api.earn(alice)

    assert ids(await board(api)) == [alice.user_id]
    assert (await api.http.get(f"/api/users/{alice.user_id}/score")).json()["rank"] == 1
