"""When banned, restored and corrected scores count as reached (the tie-break after admin acts)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from scoreboard.domain.model import UserState
from scoreboard.domain.moderation import TICK, ban_moment, restored_moment, state_dict, state_from

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
LATER = T0 + timedelta(seconds=30)


def test_a_ban_takes_effect_now() -> None:
    assert ban_moment(LATER, T0) == LATER


def test_a_ban_is_after_the_last_score_even_when_the_clock_is_behind() -> None:
    assert ban_moment(T0, LATER) == LATER + TICK


def test_a_corrected_score_counts_as_reached_now() -> None:
    assert restored_moment(LATER, T0, None) == LATER


def test_a_corrected_score_is_newer_than_the_previous_one_and_the_ban() -> None:
    assert restored_moment(T0, LATER, None) == LATER + TICK
    assert restored_moment(T0, T0, LATER) == LATER + TICK


def test_user_state_round_trips_through_its_stored_form() -> None:
    state = UserState(12, banned=True)

    assert state_from(state_dict(state)) == state


@pytest.mark.parametrize("stored", [{"score": "1", "banned": False}, {"score": 1, "banned": 0}])
def test_a_malformed_stored_state_is_refused(stored: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="stored user state"):
        state_from(stored)
