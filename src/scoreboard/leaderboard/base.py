"""The Leaderboard: a ranked cache of every positive score, derived from and rebuildable from the Store.

It owns the board's history position: an `epoch` (a new one whenever history is lost, e.g. on a
rebuild) and a `seq` that rises by exactly one per published change of the top 10.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from scoreboard.domain.model import Board, RankedEntry, ScoreEntry, ScoreRow
from scoreboard.domain.ranking import score_row

RebuildSource = Iterable[ScoreEntry] | AsyncIterable[Sequence[ScoreRow]]
"""What a rebuild loads: entries, or (from the Store, streamed) an async iterable of row chunks."""

REBUILD_CHUNK = 5000


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
        nothing, so replays from the outbox are harmless.

        A score of 0 removes the user (see `remove`)."""

    async def remove(self, user_id: str, at: datetime) -> Applied:
        """Take the user off the board as of `at` (a ban, a score corrected to 0), publishing a
        changed top 10 like `apply`. The board remembers `at` until the next rebuild, so a late
        replay of an entry reached before it does not put the user back; a newer entry does.
        `apply(ScoreEntry(user_id, ..., 0, at))` is the same operation (outbox events use it)."""

    async def board(self, limit: int) -> Board:
        """The best `limit` entries with the current epoch and seq."""

    async def board_json(self, limit: int) -> bytes:
        """`board(limit)` as the exact JSON body of GET /api/leaderboard, prepared once per change."""

    async def standing(self, user_id: str) -> RankedEntry | None:
        """The user's score and rank, or None when they have no positive score on the board."""

    async def rebuild(self, entries: RebuildSource) -> Board:
        """Replace the whole cache with `entries` (the Store's truth) and start a new epoch.

        `entries` is either ScoreEntry objects or, as the Store streams them (`Store.score_rows`),
        an async iterable of chunks of rows; scores of 0 are left out either way."""

    async def exists(self) -> bool:
        """Whether the cache holds a board; False when it was lost and must be rebuilt."""

    async def ping(self) -> None:
        """Raise when the cache cannot be reached."""

    async def close(self) -> None:
        """Release connections."""


async def row_chunks(
    source: RebuildSource, size: int = REBUILD_CHUNK
) -> AsyncGenerator[Sequence[ScoreRow], None]:
    """`source` as chunks of rows, whichever form it came in (entries are cut into `size` rows)."""
    if isinstance(source, AsyncIterable):
        try:
            async for rows in source:
                yield rows
        finally:
            if isinstance(source, AsyncGenerator):
                await source.aclose()  # closed early: a Store stream gives its connection back now
        return
    chunk: list[ScoreRow] = []
    for entry in source:
        chunk.append(score_row(entry))
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
