"""The in-memory Leaderboard: the embedded default and the fast tests' cache.

A sorted list keyed in board order gives O(log n) updates and rank look-ups; the asyncio loop is
the lock (no await inside a mutation), so apply is atomic.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterable
from datetime import datetime

from sortedcontainers import SortedList

from scoreboard.domain.model import Board, RankedEntry, ScoreEntry
from scoreboard.domain.ranking import TOP_SIZE, RankKey, entry_key, row_entry, top_changed
from scoreboard.leaderboard.base import Applied, RebuildSource, row_chunks
from scoreboard.leaderboard.encoding import encode_board

_last_epoch = 0


def new_epoch() -> int:
    """Epochs are creation times in milliseconds: a restarted or rebuilt board never reuses one — not
    even two rebuilds within one millisecond, which would otherwise share an epoch (and a client at
    seq 0 of the first would ignore the second's snapshot as stale)."""
    global _last_epoch
    _last_epoch = max(time.time_ns() // 1_000_000, _last_epoch + 1)
    return _last_epoch


class MemoryLeaderboard:
    def __init__(self) -> None:
        self._order: SortedList = SortedList()
        self._entries: dict[str, tuple[RankKey, ScoreEntry]] = {}
        self._removed: dict[str, datetime] = {}  # user -> when they left the board
        self._epoch = new_epoch()
        self._seq = 0
        self._top: tuple[RankedEntry, ...] = ()
        self._version = 0
        self._json: dict[int, tuple[int, bytes]] = {}
        self._built = False

    async def apply(self, entry: ScoreEntry) -> Applied:
        known = self._entries.get(entry.user_id)
        latest = self._removed.get(entry.user_id) if known is None else known[1].reached_at
        if latest is None or latest < entry.reached_at:
            self._put(entry)
        rank = self._rank(entry.user_id)
        if (rank is None or rank > TOP_SIZE) and not self._in_top(entry.user_id):
            return Applied(rank, None)
        top = self._ranked(TOP_SIZE)
        if not top_changed(self._top, top):
            return Applied(rank, None)
        self._top = top
        self._seq += 1
        return Applied(rank, Board(self._epoch, self._seq, top))

    async def remove(self, user_id: str, at: datetime) -> Applied:
        return await self.apply(ScoreEntry(user_id, "", 0, at))

    async def board(self, limit: int) -> Board:
        return Board(self._epoch, self._seq, self._ranked(limit))

    async def board_json(self, limit: int) -> bytes:
        cached = self._json.get(limit)
        if cached is not None and cached[0] == self._version:
            return cached[1]
        body = encode_board(await self.board(limit))
        self._json[limit] = (self._version, body)
        return body

    async def standing(self, user_id: str) -> RankedEntry | None:
        rank = self._rank(user_id)
        if rank is None:
            return None
        entry = self._entries[user_id][1]
        return RankedEntry(rank, entry.user_id, entry.display_name, entry.score)

    async def rebuild(self, entries: RebuildSource) -> Board:
        if isinstance(entries, AsyncIterable):
            # Read the whole stream first, so the swap below stays one step with no await inside.
            entries = [row_entry(row) async for chunk in row_chunks(entries) for row in chunk]
        self._order = SortedList()
        self._entries = {}
        self._removed = {}
        for entry in entries:
            self._put(entry)
        # Two rebuilds within one millisecond must still be two epochs.
        self._epoch, self._seq = max(new_epoch(), self._epoch + 1), 0
        self._version += 1
        self._built = True
        self._top = self._ranked(TOP_SIZE)
        return Board(self._epoch, self._seq, self._top)

    async def exists(self) -> bool:
        """False until the first rebuild: a new process starts with an empty cache."""
        return self._built

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def _put(self, entry: ScoreEntry) -> None:
        old = self._entries.pop(entry.user_id, None)
        if old is not None:
            self._order.remove(old[0])
        self._version += 1
        if entry.score <= 0:
            self._removed[entry.user_id] = entry.reached_at
            return
        self._removed.pop(entry.user_id, None)
        key = entry_key(entry)
        self._order.add(key)
        self._entries[entry.user_id] = (key, entry)

    def _rank(self, user_id: str) -> int | None:
        known = self._entries.get(user_id)
        return None if known is None else int(self._order.index(known[0])) + 1

    def _in_top(self, user_id: str) -> bool:
        return any(e.user_id == user_id for e in self._top)

    def _ranked(self, limit: int) -> tuple[RankedEntry, ...]:
        ranked = []
        for i, key in enumerate(self._order.islice(0, limit), start=1):
            entry = self._entries[key[2]][1]
            ranked.append(RankedEntry(i, entry.user_id, entry.display_name, entry.score))
        return tuple(ranked)
