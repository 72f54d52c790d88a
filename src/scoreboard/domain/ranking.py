"""Ranking order and top-N change detection.

Order: score descending, then whoever reached that score first, then user id (so the order is
total and every adapter agrees on it).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

from scoreboard.domain.model import RankedEntry, ScoreEntry, ScoreRow

TOP_SIZE = 10

RankKey = tuple[int, int, str]


def to_micros(moment: datetime) -> int:
    """Microseconds since the epoch: the tie-break unit every store and cache keeps exactly."""
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def from_micros(micros: int) -> datetime:
    """The UTC moment `micros` microseconds after the epoch: the inverse of `to_micros`."""
    return _EPOCH + timedelta(microseconds=micros)


def score_row(entry: ScoreEntry) -> ScoreRow:
    return (entry.user_id, entry.display_name, entry.score, to_micros(entry.reached_at))


def row_entry(row: ScoreRow) -> ScoreEntry:
    user_id, display_name, score, reached_us = row
    return ScoreEntry(user_id, display_name, score, from_micros(reached_us))


def rank_key(score: int, reached_at_us: int, user_id: str) -> RankKey:
    """A key that sorts ascending in board order (best first)."""
    return (-score, reached_at_us, user_id)


def entry_key(entry: ScoreEntry) -> RankKey:
    return rank_key(entry.score, to_micros(entry.reached_at), entry.user_id)


def rank_entries(entries: Iterable[ScoreEntry], limit: int) -> tuple[RankedEntry, ...]:
    """The best `limit` entries with scores above zero, ranked from 1."""
    ordered = sorted((e for e in entries if e.score > 0), key=entry_key)[:limit]
    return tuple(
        RankedEntry(rank=i, user_id=e.user_id, display_name=e.display_name, score=e.score)
        for i, e in enumerate(ordered, start=1)
    )


def top_changed(before: Sequence[RankedEntry], after: Sequence[RankedEntry]) -> bool:
    """Whether the visible top changed: members, order, scores or display names."""
    return tuple(before) != tuple(after)
