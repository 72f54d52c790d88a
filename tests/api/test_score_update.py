"""POST /api/score/update: every outcome but bad bodies (test_bodies.py), rate limits
(test_rate_limits.py) and concurrency (test_exactly_once.py)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from scoreboard.config import Settings
from scoreboard.domain.actions import ActionPolicy
from scoreboard.domain.model import Role
from tests.api.support import (
    SUCCESS,
    assert_problem,
    bearer,
    database,
    forge,
    metric,
    redeemed_at,
    stored_score,
    write_action_types,
)
from tests.conftest import PASSWORD, Api, ManualClock, User

MAX_SCORE = 2**63 - 1
TIMED_TYPES = """
[action_types.default]
points = 1
ttl_seconds = 60

[action_types.quiz]
points = 5
ttl_seconds = 600
min_seconds = 30
"""


async def privileged(api: Api, role: Role) -> User:
    """A user holding `role` besides `user`, made the way `scoreboard create-user --service` does."""
    name = f"{role}{uuid.uuid4().hex[:8]}"
    account = await api.app.state.container.accounts.register(
        name, PASSWORD, None, "test", roles=(Role.USER, role)
    )
    tokens = await api.login(name)
    api.http.cookies.clear()
    return User(account.user_id, name, tokens["access_token"], tokens)


async def timed_api(
    make_api: Callable[..., Any], settings: Settings, tmp_path: Path
) -> tuple[Api, ManualClock]:
    clock = ManualClock()
    types = write_action_types(tmp_path / "types.toml", TIMED_TYPES)
    api: Api = await make_api(settings, clock=clock, action_types_file=types)
    return api, clock


# 200 ------------------------------------------------------------------------------------------


async def test_update_answers_the_exact_success_body(api: Api) -> None:
    alice = await api.user()

    first = await api.update(alice, await api.ticket(alice))
    second = await api.update(alice, await api.ticket(alice))

    assert first.status_code == 200
    assert first.headers["content-type"] == "application/json"
    assert first.json() == {"message": SUCCESS, "new_score": 1, "rank": 1}
    assert second.json() == {"message": SUCCESS, "new_score": 2, "rank": 1}


async def test_update_reports_the_rank_after_the_update(api: Api) -> None:
    alice, bob = await api.user(), await api.user()
    await api.earn(alice, 2)

    behind = await api.update(bob, await api.ticket(bob))
    await api.earn(bob, 1)
    ahead = await api.update(bob, await api.ticket(bob))

    assert behind.json() == {"message": SUCCESS, "new_score": 1, "rank": 2}
    assert ahead.json() == {"message": SUCCESS, "new_score": 3, "rank": 1}


async def test_update_adds_the_points_of_the_ticket_type(
    make_api: Callable[..., Any], settings: Settings, tmp_path: Path
) -> None:
    api, clock = await timed_api(make_api, settings, tmp_path)
    alice = await api.user()
    action_id = await api.ticket(alice, "quiz")
    clock.advance(31)

    response = await api.update(alice, action_id)

    assert response.json() == {"message": SUCCESS, "new_score": 5, "rank": 1}
    assert stored_score(settings, alice.user_id) == 5


# 403 ------------------------------------------------------------------------------------------


async def test_user_acting_for_another_user_is_403_and_the_ticket_survives(api: Api) -> None:
    alice, mallory = await api.user(), await api.user()
    action_id = await api.ticket(alice)

    response = await api.update(mallory, action_id, user_id=alice.user_id)
    by_owner = await api.update(alice, action_id)

    assert_problem(response, 403, "forbidden")
    assert by_owner.status_code == 200
    assert stored_score(settings=api.app.state.container.settings, user_id=alice.user_id) == 1


@pytest.mark.parametrize("role", [Role.SERVICE, Role.ADMIN])
async def test_service_or_admin_may_act_for_another_user(api: Api, role: Role) -> None:
    alice = await api.user()
    operator = await privileged(api, role)
    action_id = await api.ticket(alice)

    response = await api.update(operator, action_id, user_id=alice.user_id)

    assert response.status_code == 200, response.text
    assert response.json() == {"message": SUCCESS, "new_score": 1, "rank": 1}
    standing = (await api.http.get(f"/api/users/{alice.user_id}/score")).json()
    assert standing["score"] == 1
    assert (await api.http.get(f"/api/users/{operator.user_id}/score")).json()["score"] == 0


async def test_service_cannot_credit_a_ticket_to_a_user_it_was_not_issued_to(api: Api) -> None:
    alice, bob = await api.user(), await api.user()
    service = await privileged(api, Role.SERVICE)
    action_id = await api.ticket(alice)

    response = await api.update(service, action_id, user_id=bob.user_id)

    assert_problem(response, 403, "forbidden")
    assert (await api.update(alice, action_id)).status_code == 200


async def test_ticket_issued_to_another_user_is_403_and_still_redeemable_by_its_owner(api: Api) -> None:
    alice, bob = await api.user(), await api.user()
    action_id = await api.ticket(alice)

    stolen = await api.update(bob, action_id)
    by_owner = await api.update(alice, action_id)

    assert_problem(stolen, 403, "forbidden")
    assert by_owner.status_code == 200
    assert stored_score(api.app.state.container.settings, bob.user_id) == 0


async def test_redeemed_ticket_of_another_user_is_403_not_409(api: Api) -> None:
    alice, bob = await api.user(), await api.user()
    action_id = await api.ticket(alice)
    await api.update(alice, action_id)

    response = await api.update(bob, action_id)

    body = assert_problem(response, 403, "forbidden")
    assert "score" not in body


async def test_action_id_never_issued_is_403_under_the_ticketed_policy(api: Api) -> None:
    alice = await api.user()

    response = await api.update(alice, str(uuid.uuid4()))

    assert_problem(response, 403, "forbidden")


async def test_expired_ticket_is_403(
    make_api: Callable[..., Any], settings: Settings, tmp_path: Path
) -> None:
    api, clock = await timed_api(make_api, settings, tmp_path)
    alice = await api.user()
    in_time, too_late = await api.ticket(alice), await api.ticket(alice)
    clock.advance(59)
    accepted = await api.update(alice, in_time)
    clock.advance(1)

    response = await api.update(alice, too_late)

    assert accepted.status_code == 200
    body = assert_problem(response, 403, "forbidden")
    assert "expired" in body["detail"]
    assert stored_score(settings, alice.user_id) == 1


async def test_ticket_redeemed_too_soon_is_403_and_not_used_up(
    make_api: Callable[..., Any], settings: Settings, tmp_path: Path
) -> None:
    api, clock = await timed_api(make_api, settings, tmp_path)
    alice = await api.user()
    action_id = await api.ticket(alice, "quiz")
    clock.advance(29)

    too_soon = await api.update(alice, action_id)
    clock.advance(2)
    later = await api.update(alice, action_id)

    body = assert_problem(too_soon, 403, "forbidden")
    assert "too soon" in body["detail"]
    assert later.status_code == 200, later.text
    assert later.json()["new_score"] == 5


# 409 ------------------------------------------------------------------------------------------


async def test_second_request_with_same_action_id_is_conflict_carrying_the_score(api: Api) -> None:
    alice = await api.user()
    await api.earn(alice, 2)
    action_id = await api.ticket(alice)
    await api.update(alice, action_id)

    response = await api.update(alice, action_id)

    body = assert_problem(response, 409, "duplicate_action")
    assert body["score"] == 3
    assert stored_score(api.app.state.container.settings, alice.user_id) == 3


async def test_duplicate_reports_the_current_score_not_the_score_at_redemption(api: Api) -> None:
    alice = await api.user()
    action_id = await api.ticket(alice)
    await api.update(alice, action_id)
    await api.earn(alice, 2)

    response = await api.update(alice, action_id)

    assert assert_problem(response, 409, "duplicate_action")["score"] == 3


# refused attempts keep the ticket -------------------------------------------------------------


async def test_refused_400_does_not_use_up_the_ticket(api: Api) -> None:
    alice = await api.user()
    action_id = await api.ticket(alice)

    refused = await api.http.post(
        "/api/score/update",
        json={"user_id": alice.user_id, "action_id": action_id, "points": 100},
        headers=alice.auth,
    )
    accepted = await api.update(alice, action_id)

    assert_problem(refused, 400, "invalid_request")
    assert accepted.json() == {"message": SUCCESS, "new_score": 1, "rank": 1}


async def test_refused_401_does_not_use_up_the_ticket(api: Api) -> None:
    alice = await api.user()
    action_id = await api.ticket(alice)
    expired = forge(alice.user_id, exp=1, iat=0, nbf=0)

    refused = await api.http.post(
        "/api/score/update", json={"user_id": alice.user_id, "action_id": action_id}, headers=bearer(expired)
    )
    accepted = await api.update(alice, action_id)

    assert_problem(refused, 401, "unauthenticated")
    assert accepted.status_code == 200


async def test_refused_429_does_not_use_up_the_ticket(
    make_api: Callable[..., Any], settings: Settings
) -> None:
    limited: Api = await make_api(settings, rate_limit_score_updates="1/minute")
    alice = await limited.user()
    action_id = await limited.ticket(alice)
    await limited.http.post("/api/score/update", json={}, headers=alice.auth)  # spends the one allowed

    refused = await limited.update(alice, action_id)
    untouched = redeemed_at(settings, action_id) is None
    unlimited: Api = await make_api(settings)  # same database, no limit
    accepted = await unlimited.update(alice, action_id)

    assert_problem(refused, 429, "rate_limited")
    assert untouched
    assert accepted.status_code == 200, accepted.text


# open policy ----------------------------------------------------------------------------------


OPEN_TYPES = """
[action_types.default]
points = 3
"""


async def test_open_policy_accepts_any_new_uuid_once_worth_the_default_points(
    make_api: Callable[..., Any], settings: Settings, tmp_path: Path
) -> None:
    types = write_action_types(tmp_path / "types.toml", OPEN_TYPES)
    api: Api = await make_api(settings, action_policy=ActionPolicy.OPEN, action_types_file=types)
    alice = await api.user()
    action_id = str(uuid.uuid4())

    first = await api.update(alice, action_id)
    second = await api.update(alice, action_id)
    another = await api.update(alice, str(uuid.uuid4()))

    assert first.json() == {"message": SUCCESS, "new_score": 3, "rank": 1}
    assert assert_problem(second, 409, "duplicate_action")["score"] == 3
    assert another.json()["new_score"] == 6


async def test_open_policy_still_refuses_non_canonical_ids_and_other_users(
    make_api: Callable[..., Any], settings: Settings
) -> None:
    api: Api = await make_api(settings, action_policy=ActionPolicy.OPEN)
    alice, bob = await api.user(), await api.user()

    upper = await api.update(alice, str(uuid.uuid4()).upper())
    for_bob = await api.update(alice, str(uuid.uuid4()), user_id=bob.user_id)

    assert_problem(upper, 400, "invalid_request")
    assert_problem(for_bob, 403, "forbidden")


async def test_open_policy_action_id_used_by_one_user_is_conflict_for_another(
    make_api: Callable[..., Any], settings: Settings
) -> None:
    api: Api = await make_api(settings, action_policy=ActionPolicy.OPEN)
    alice, bob = await api.user(), await api.user()
    action_id = str(uuid.uuid4())
    await api.update(alice, action_id)

    response = await api.update(bob, action_id)

    assert_problem(response, 409, "duplicate_action")
    assert stored_score(settings, bob.user_id) == 0


# overflow -------------------------------------------------------------------------------------


async def test_update_that_would_overflow_64_bits_is_refused_and_changes_nothing(
    api: Api, settings: Settings
) -> None:
    alice = await api.user()
    with database(settings) as conn:
        conn.execute("UPDATE user_score SET score = ? WHERE user_id = ?", (MAX_SCORE - 1, alice.user_id))
    to_the_limit = await api.update(alice, await api.ticket(alice))
    action_id = await api.ticket(alice)

    response = await api.update(alice, action_id)

    assert to_the_limit.status_code == 200, to_the_limit.text
    assert to_the_limit.json()["new_score"] == MAX_SCORE
    assert_problem(response, 409, "score_overflow")
    assert stored_score(settings, alice.user_id) == MAX_SCORE
    assert redeemed_at(settings, action_id) is None
    text = (await api.http.get("/metrics")).text
    assert metric(text, "scoreboard_score_updates_total", outcome="overflow") == 1
    assert metric(text, "scoreboard_score_updates_total", outcome="duplicate") == 0


# 503 ------------------------------------------------------------------------------------------


async def test_update_is_503_when_the_database_writer_is_down(
    make_api: Callable[..., Any], settings: Settings
) -> None:
    api: Api = await make_api(settings)
    alice = await api.user()
    action_id = await api.ticket(alice)
    api.app.state.container.store._writer.stop()

    response = await api.update(alice, action_id)
    recovered: Api = await make_api(settings)  # the same database, served again
    retried = await recovered.update(alice, action_id)

    assert_problem(response, 503, "service_unavailable")
    assert int(response.headers["retry-after"]) > 0
    assert retried.json() == {"message": SUCCESS, "new_score": 1, "rank": 1}


async def test_update_failing_inside_the_database_is_503_and_nothing_is_half_applied(
    api: Api, settings: Settings
) -> None:
    alice = await api.user()
    await api.earn(alice, 1)
    action_id = await api.ticket(alice)
    with database(settings) as conn:
        outbox_before = conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
        # A real SQLite error in the middle of the redemption: after the ticket is claimed,
        # when the score row is written.
        conn.execute(
            "CREATE TRIGGER break_scores AFTER UPDATE ON user_score BEGIN INSERT INTO missing VALUES (1); END"
        )

    response = await api.update(alice, action_id)
    with database(settings) as conn:
        outbox_after = conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
        conn.execute("DROP TRIGGER break_scores")
    score_after, ticket_after = stored_score(settings, alice.user_id), redeemed_at(settings, action_id)
    retried = await api.update(alice, action_id)

    assert_problem(response, 503, "service_unavailable")
    assert int(response.headers["retry-after"]) > 0
    assert score_after == 1
    assert ticket_after is None
    assert outbox_after == outbox_before
    assert retried.json() == {"message": SUCCESS, "new_score": 2, "rank": 1}


async def test_ticket_issue_is_503_when_the_database_writer_is_down(api: Api) -> None:
    alice = await api.user()
    api.app.state.container.store._writer.stop()

    response = await api.http.post("/api/actions", json={"type": "default"}, headers=alice.auth)

    assert_problem(response, 503, "service_unavailable")
    assert "retry-after" in response.headers
