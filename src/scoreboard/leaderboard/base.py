"""The Leaderboard: a ranked cache of every positive score, derived from and rebuildable from the Store.

It owns the board's history position: an `epoch` (a new one whenever history is lost, e.g. on a
rebuild) and a `seq` that rises by exactly one per published change of the top 10.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from scoreboard.domain.model import Board, RankedEntry, ScoreEntry


@dataclass(frozen=True, slots=True)
class Applied:
    """The result of applying one score: the user's rank, and the new board if the top changed."""

    rank: int | None
    changed: Board | None
    published: bool = False  # the adapter already delivered `changed` to the broker itself


class Leaderboard(Protocol):
    async def apply(self, entry: ScoreEntry) -> Applied:
        """Atomically set the user's absolute score, re-read the top 10 and, only if it changed, take
        the next seq. Idempotent: applying the same or an older entry (by `reached_at`) again changes
        nothing, so replays from the outbox are harmless."""

    async def board(self, limit: int) -> Board:
        """The best `limit` entries with the current epoch and seq."""

    async def board_json(self, limit: int) -> bytes:
        """`board(limit)` as the exact JSON body of GET /api/leaderboard, prepared once per change."""

    async def standing(self, user_id: str) -> RankedEntry | None:
        """The user's score and rank, or None when they have no positive score on the board."""

    async def rebuild(self, entries: Iterable[ScoreEntry]) -> Board:
        """Replace the whole cache with `entries` (the Store's truth) and start a new epoch."""

    async def exists(self) -> bool:
        """Whether the cache holds a board; False when it was lost and must be rebuilt."""

    async def ping(self) -> None:
        """Raise when the cache cannot be reached."""

    async def close(self) -> None:
        """Release connections."""
