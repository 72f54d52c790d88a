"""Score arithmetic: 64-bit scores that refuse rather than wrap."""

from __future__ import annotations

import pytest

from scoreboard.domain.errors import ScoreOverflow
from scoreboard.domain.scoring import MAX_SCORE, add_points


def test_max_score_is_the_largest_signed_64_bit_integer() -> None:
    assert MAX_SCORE == 2**63 - 1


def test_points_are_added() -> None:
    assert add_points(0, 1) == 1
    assert add_points(41, 1) == 42


def test_score_may_reach_exactly_the_maximum() -> None:
    assert add_points(MAX_SCORE - 1, 1) == MAX_SCORE
    assert add_points(0, MAX_SCORE) == MAX_SCORE


@pytest.mark.parametrize(("score", "points"), [(MAX_SCORE, 1), (MAX_SCORE - 5, 6), (1, MAX_SCORE)])
def test_increment_past_the_maximum_is_refused(score: int, points: int) -> None:
    with pytest.raises(ScoreOverflow, match=f"adding {points} points to {score}"):
        add_points(score, points)


@pytest.mark.parametrize("points", [0, -1, -(2**63)])
def test_non_positive_points_are_refused(points: int) -> None:
    with pytest.raises(ValueError, match="points must be positive"):
        add_points(10, points)
