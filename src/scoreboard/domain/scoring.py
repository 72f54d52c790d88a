"""Score arithmetic: 64-bit scores that refuse to overflow."""

from __future__ import annotations

from scoreboard.domain.errors import ScoreOverflow

MAX_SCORE = 2**63 - 1


def add_points(score: int, points: int) -> int:
    """The score after earning `points`; refuses rather than wraps past the 64-bit limit."""
    if points <= 0:
        raise ValueError(f"points must be positive, got {points}")
    if score > MAX_SCORE - points:
        raise ScoreOverflow(score, points)
    return score + points
