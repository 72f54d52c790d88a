"""Anti-cheat for actions (OWASP API1/API5/API6 2023: object- and function-level authorisation,
unrestricted access to a sensitive business flow): tickets are bound to the user and the type,
single-use, expiring, not redeemable before the type's minimum completion time, limited by a
per-user hourly quota; only role `service` (or `admin`) may redeem for another user."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from scoreboard.config import Settings
from scoreboard.domain.model import Role
from tests.api.support import assert_problem, redeemed_at, stored_score, write_action_types
from tests.conftest import Api, ManualClock
from tests.security.support import user_with_roles

TYPES = """
[action_types.default]
points = 1

[action_types.quiz]
points = 5
ttl_seconds = 120
min_seconds = 10
per_user_per_hour = 2
"""


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def game(make_api: Callable[..., Any], settings: Settings, tmp_path: Path, clock: ManualClock) -> Api:
    types = write_action_types(tmp_path / "types.toml", TYPES)
    api: Api = await make_api(settings, clock=clock, action_types_file=types)
    return api


async def test_a_ticket_redeemed_by_another_user_is_403_and_stays_the_owners(
    game: Api, settings: Settings
) -> None:
    alice, mallory = await game.user(), await game.user()
    action_id = await game.ticket(alice)

    stolen = await game.update(mallory, action_id)

    assert_problem(stolen, 403, "forbidden")
    assert stored_score(settings, mallory.user_id) == 0
    assert redeemed_at(settings, action_id) is None
    assert (await game.update(alice, action_id)).status_code == 200


async def test_a_ticket_earns_exactly_its_types_points(game: Api, clock: ManualClock) -> None:
    alice = await game.user()
    quiz, default = await game.ticket(alice, "quiz"), await game.ticket(alice, "default")
    clock.advance(10)

    first = await game.update(alice, default)
    second = await game.update(alice, quiz)

    assert first.json()["new_score"] == 1
    assert second.json()["new_score"] == 6


async def test_a_ticket_is_single_use(game: Api) -> None:
    alice = await game.user()
    action_id = await game.ticket(alice)
    assert (await game.update(alice, action_id)).status_code == 200

    again = await game.update(alice, action_id)

    assert assert_problem(again, 409, "duplicate_action")["score"] == 1


async def test_an_expired_ticket_is_403(game: Api, clock: ManualClock, settings: Settings) -> None:
    alice = await game.user()
    action_id = await game.ticket(alice, "quiz")
    clock.advance(120)

    response = await game.update(alice, action_id)

    assert_problem(response, 403, "forbidden")
    assert "expired" in response.json()["detail"]
    assert stored_score(settings, alice.user_id) == 0


async def test_too_soon_is_403_and_does_not_use_up_the_ticket(game: Api, clock: ManualClock) -> None:
    alice = await game.user()
    action_id = await game.ticket(alice, "quiz")
    clock.advance(9.9)

    early = await game.update(alice, action_id)
    clock.advance(0.1)
    in_time = await game.update(alice, action_id)

    assert_problem(early, 403, "forbidden")
    assert "too soon" in early.json()["detail"]
    assert in_time.status_code == 200, in_time.text
    assert in_time.json()["new_score"] == 5


async def test_hourly_quota_is_per_user_and_per_type(game: Api) -> None:
    alice, bob = await game.user(), await game.user()
    for _ in range(2):
        await game.ticket(alice, "quiz")

    refused = await game.http.post("/api/actions", json={"type": "quiz"}, headers=alice.auth)

    assert_problem(refused, 429, "quota_exceeded")
    assert int(refused.headers["retry-after"]) > 0
    assert (
        await game.http.post("/api/actions", json={"type": "default"}, headers=alice.auth)
    ).status_code == 201
    assert (await game.http.post("/api/actions", json={"type": "quiz"}, headers=bob.auth)).status_code == 201


async def test_a_user_cannot_redeem_on_another_users_behalf(game: Api, settings: Settings) -> None:
    alice, mallory = await game.user(), await game.user()
    action_id = await game.ticket(alice)

    response = await game.update(mallory, action_id, user_id=alice.user_id)

    assert_problem(response, 403, "forbidden")
    assert stored_score(settings, alice.user_id) == 0
    assert redeemed_at(settings, action_id) is None


async def test_a_service_redeems_on_a_users_behalf(game: Api, settings: Settings) -> None:
    alice = await game.user()
    server = await user_with_roles(game, Role.SERVICE)
    action_id = await game.ticket(alice)

    response = await game.update(server, action_id, user_id=alice.user_id)

    assert response.status_code == 200, response.text
    assert stored_score(settings, alice.user_id) == 1
    assert stored_score(settings, server.user_id) == 0


async def test_a_service_cannot_move_a_ticket_to_another_user(game: Api, settings: Settings) -> None:
    alice, bob = await game.user(), await game.user()
    server = await user_with_roles(game, Role.SERVICE)
    action_id = await game.ticket(alice)

    response = await game.update(server, action_id, user_id=bob.user_id)

    assert_problem(response, 403, "forbidden")
    assert stored_score(settings, bob.user_id) == 0
    assert redeemed_at(settings, action_id) is None
