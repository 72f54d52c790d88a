"""Moderation rules: when a banned, unbanned or corrected score counts as reached.

The board orders equal scores by who reached them first, and every cache ignores an entry that is
not newer than what it holds (so outbox replays are harmless). An admin act therefore moves the
user's `reached_at` forward: a corrected or restored score counts as reached at the moment of the
act (never before the user's previous score or ban), and a ban is recorded at a moment after the
user's last score, so a late replay of that score cannot put a banned user back on a cached board.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from scoreboard.domain.model import UserState

TICK = timedelta(microseconds=1)


def ban_moment(now: datetime, reached_at: datetime) -> datetime:
    """When a ban takes effect: now, but strictly after the score it removes was reached."""
    return max(now, reached_at + TICK)


def restored_moment(now: datetime, reached_at: datetime, banned_at: datetime | None) -> datetime:
    """When a corrected or restored score counts as reached: now, but strictly after the previous
    score and after any ban, so every cache takes it as the newest entry."""
    later = reached_at if banned_at is None else max(reached_at, banned_at)
    return max(now, later + TICK)


def state_dict(state: UserState) -> dict[str, object]:
    return {"score": state.score, "banned": state.banned}


def state_from(value: dict[str, object]) -> UserState:
    score, banned = value["score"], value["banned"]
    if not isinstance(score, int) or not isinstance(banned, bool):
        raise ValueError(f"not a stored user state: {value!r}")
    return UserState(score, banned)
