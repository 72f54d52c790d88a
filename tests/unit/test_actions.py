"""Action types and the redemption rules: who may redeem which ticket, and when."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from scoreboard.domain.actions import (
    DEFAULT_TYPE,
    ActionCatalog,
    ActionType,
    check_redeemable,
    issue_ticket,
)
from scoreboard.domain.errors import ActionNotPermitted, DuplicateAction, UnknownActionType
from scoreboard.domain.model import Ticket

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
ALICE, BOB = "alice-id", "bob-id"
QUIZ = ActionType("quiz", points=5, ttl_seconds=60, min_seconds=10)


def ticket(user_id: str = ALICE, redeemed: bool = False) -> Ticket:
    issued = issue_ticket("action-1", user_id, QUIZ, T0)
    return replace(issued, redeemed_at=at(20)) if redeemed else issued


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_issued_ticket_carries_the_type_points_and_window() -> None:
    issued = issue_ticket("action-1", ALICE, QUIZ, T0)

    assert issued == Ticket("action-1", ALICE, "quiz", 5, T0, T0 + timedelta(seconds=60), None)


def test_owner_may_redeem_within_the_window() -> None:
    issued = ticket()

    assert check_redeemable(issued, ALICE, at(30), QUIZ.min_seconds, current_score=0) is issued


def test_unknown_ticket_is_not_permitted() -> None:
    with pytest.raises(ActionNotPermitted, match="not issued to this user"):
        check_redeemable(None, ALICE, at(30), 0, current_score=0)


def test_another_users_ticket_is_not_permitted() -> None:
    with pytest.raises(ActionNotPermitted, match="not issued to this user"):
        check_redeemable(ticket(ALICE), BOB, at(30), 0, current_score=0)


def test_another_users_redeemed_ticket_is_not_permitted_rather_than_duplicate() -> None:
    with pytest.raises(ActionNotPermitted) as refused:
        check_redeemable(ticket(ALICE, redeemed=True), BOB, at(30), 0, current_score=7)

    assert not isinstance(refused.value, DuplicateAction)


def test_redeemed_ticket_is_a_duplicate_carrying_the_current_score() -> None:
    with pytest.raises(DuplicateAction) as duplicate:
        check_redeemable(ticket(redeemed=True), ALICE, at(30), 0, current_score=42)

    assert duplicate.value.score == 42


def test_redeemed_ticket_is_a_duplicate_even_after_expiry() -> None:
    with pytest.raises(DuplicateAction):
        check_redeemable(ticket(redeemed=True), ALICE, at(3600), 0, current_score=1)


def test_ticket_expires_at_exactly_expires_at() -> None:
    issued = ticket()
    check_redeemable(issued, ALICE, issued.expires_at - timedelta(microseconds=1), 0, current_score=0)

    with pytest.raises(ActionNotPermitted, match="expired"):
        check_redeemable(issued, ALICE, issued.expires_at, 0, current_score=0)


def test_ticket_redeemed_too_soon_is_not_permitted() -> None:
    before_min = at(QUIZ.min_seconds) - timedelta(microseconds=1)

    with pytest.raises(ActionNotPermitted, match="too soon"):
        check_redeemable(ticket(), ALICE, before_min, QUIZ.min_seconds, current_score=0)


def test_ticket_may_be_redeemed_at_exactly_min_seconds() -> None:
    issued = ticket()

    assert check_redeemable(issued, ALICE, at(QUIZ.min_seconds), QUIZ.min_seconds, current_score=0) is issued


def test_zero_min_seconds_allows_redeeming_at_issue() -> None:
    assert check_redeemable(ticket(), ALICE, T0, 0, current_score=0).action_id == "action-1"


def test_action_type_defaults() -> None:
    kind = ActionType("default")

    assert (kind.points, kind.ttl_seconds, kind.min_seconds, kind.per_user_per_hour) == (1, 600, 0, None)


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"points": 0}, "points must be > 0"),
        ({"points": -1}, "points must be > 0"),
        ({"ttl_seconds": 0}, "ttl_seconds must be > 0"),
        ({"ttl_seconds": -5}, "ttl_seconds must be > 0"),
        ({"min_seconds": -1}, "min_seconds"),
        ({"ttl_seconds": 10, "min_seconds": 10}, "min_seconds"),
        ({"ttl_seconds": 10, "min_seconds": 11}, "min_seconds"),
        ({"per_user_per_hour": 0}, "per_user_per_hour must be > 0"),
        ({"per_user_per_hour": -3}, "per_user_per_hour must be > 0"),
    ],
)
def test_action_type_refuses_bad_values(fields: dict[str, int], problem: str) -> None:
    with pytest.raises(ValueError, match=problem) as refused:
        ActionType("quiz", **fields)

    assert "'quiz'" in str(refused.value)


def test_action_type_accepts_the_edges() -> None:
    kind = ActionType("edge", points=1, ttl_seconds=1, min_seconds=0, per_user_per_hour=1)

    assert ActionType("edge", ttl_seconds=10, min_seconds=9).min_seconds == 9
    assert kind.per_user_per_hour == 1


def test_catalog_names_the_known_types_for_an_unknown_one() -> None:
    catalog = ActionCatalog({"quiz": QUIZ, "default": ActionType("default")})

    assert catalog.get("quiz") is QUIZ
    with pytest.raises(UnknownActionType, match=r"'chess'.*default, quiz"):
        catalog.get("chess")


def test_open_policy_is_worth_the_default_types_points() -> None:
    assert ActionCatalog.default().open_policy_points == 1
    assert ActionCatalog({DEFAULT_TYPE: ActionType(DEFAULT_TYPE, points=4)}).open_policy_points == 4
    assert ActionCatalog({"quiz": QUIZ}).open_policy_points == 1
