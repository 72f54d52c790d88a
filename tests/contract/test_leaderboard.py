"""The Leaderboard contract, run against every adapter."""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from scoreboard.domain.model import RankedEntry, ScoreEntry, ScoreRow
from scoreboard.domain.ranking import rank_entries, score_row
from scoreboard.leaderboard.base import Leaderboard
from scoreboard.leaderboard.encoding import board_body

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def entry(user_id: str, score: int, seconds: float = 0, name: str | None = None) -> ScoreEntry:
    return ScoreEntry(user_id, name or f"name-{user_id}", score, T0 + timedelta(seconds=seconds))


def top_ten() -> list[ScoreEntry]:
    """Ten users scoring 100, 99, ... 91: a full top 10 with room below it."""
    return [entry(f"top{i}", 100 - i, seconds=i) for i in range(10)]


async def full(leaderboard: Leaderboard) -> int:
    """Rebuild with a full top 10; the seq after that (0)."""
    return (await leaderboard.rebuild(top_ten())).seq


async def test_first_entry_ranks_first_and_changes_the_board(leaderboard: Leaderboard) -> None:
    await leaderboard.rebuild([])

    applied = await leaderboard.apply(entry("a", 5))

    assert applied.rank == 1
    assert applied.changed is not None
    assert applied.changed.seq == 1
    assert applied.changed.entries == (RankedEntry(1, "a", "name-a", 5),)


async def test_apply_returns_the_rank_in_board_order(leaderboard: Leaderboard) -> None:
    await leaderboard.rebuild([entry("a", 5, seconds=1), entry("b", 3)])

    assert (await leaderboard.apply(entry("c", 5, seconds=2))).rank == 2
    assert (await leaderboard.apply(entry("d", 5, seconds=0.5))).rank == 1
    assert (await leaderboard.apply(entry("e", 1))).rank == 5


async def test_seq_rises_by_one_per_change(leaderboard: Leaderboard) -> None:
    rebuilt = await leaderboard.rebuild([])
    seqs = []
    for i in range(1, 6):
        applied = await leaderboard.apply(entry(f"u{i}", i, seconds=i))
        assert applied.changed is not None
        assert applied.changed.epoch == rebuilt.epoch
        seqs.append(applied.changed.seq)

    assert seqs == [1, 2, 3, 4, 5]
    assert (await leaderboard.board(10)).seq == 5


async def test_update_outside_the_top_ten_changes_nothing_visible(leaderboard: Leaderboard) -> None:
    seq = await full(leaderboard)

    below = await leaderboard.apply(entry("low", 5, seconds=20))
    higher_below = await leaderboard.apply(entry("low", 50, seconds=21))

    assert (below.rank, below.changed) == (11, None)
    assert (higher_below.rank, higher_below.changed) == (11, None)
    assert (await leaderboard.board(10)).seq == seq


async def test_entering_the_top_ten_changes_the_board(leaderboard: Leaderboard) -> None:
    seq = await full(leaderboard)
    await leaderboard.apply(entry("low", 5, seconds=20))

    applied = await leaderboard.apply(entry("low", 95, seconds=21))

    assert applied.rank == 7  # ties with top5, who reached 95 first
    assert applied.changed is not None
    assert applied.changed.seq == seq + 1
    assert [e.user_id for e in applied.changed.entries] == [
        "top0", "top1", "top2", "top3", "top4", "top5", "low", "top6", "top7", "top8"
    ]  # fmt: skip


async def test_new_score_inside_the_top_without_reordering_changes_the_board(
    leaderboard: Leaderboard,
) -> None:
    seq = await full(leaderboard)

    applied = await leaderboard.apply(entry("top0", 150, seconds=30))

    assert applied.rank == 1
    assert applied.changed is not None
    assert applied.changed.seq == seq + 1
    assert applied.changed.entries[0] == RankedEntry(1, "top0", "name-top0", 150)


async def test_reordering_the_top_changes_the_board(leaderboard: Leaderboard) -> None:
    seq = await full(leaderboard)

    applied = await leaderboard.apply(entry("top9", 100, seconds=30))

    assert applied.rank == 2  # ties with top0, who reached 100 first
    assert applied.changed is not None
    assert applied.changed.seq == seq + 1
    assert [e.user_id for e in applied.changed.entries][:3] == ["top0", "top9", "top1"]


async def test_falling_out_of_the_top_changes_the_board(leaderboard: Leaderboard) -> None:
    seq = await full(leaderboard)
    await leaderboard.apply(entry("low", 5, seconds=20))

    applied = await leaderboard.apply(entry("top0", 1, seconds=30))  # an absolute score, set lower

    assert applied.rank == 11
    assert applied.changed is not None
    assert applied.changed.seq == seq + 1
    assert [e.user_id for e in applied.changed.entries][-1] == "low"


async def test_leaving_the_board_from_the_top_changes_it(leaderboard: Leaderboard) -> None:
    seq = await full(leaderboard)

    applied = await leaderboard.apply(entry("top0", 0, seconds=30))

    assert applied.rank is None
    assert applied.changed is not None
    assert applied.changed.seq == seq + 1
    assert "top0" not in [e.user_id for e in applied.changed.entries]
    assert await leaderboard.standing("top0") is None


async def test_reapplying_the_same_entry_changes_nothing(leaderboard: Leaderboard) -> None:
    await leaderboard.rebuild([])
    first = await leaderboard.apply(entry("a", 5))

    again = await leaderboard.apply(entry("a", 5))

    assert first.changed is not None
    assert (again.rank, again.changed) == (1, None)
    assert (await leaderboard.board(10)).seq == first.changed.seq


async def test_applying_an_older_entry_changes_nothing(leaderboard: Leaderboard) -> None:
    await leaderboard.rebuild([entry("a", 10, seconds=10), entry("b", 8, seconds=1)])

    stale = await leaderboard.apply(entry("a", 3, seconds=5))
    stale_below = await leaderboard.apply(entry("b", 20, seconds=0))

    assert (stale.rank, stale.changed) == (1, None)
    assert (stale_below.rank, stale_below.changed) == (2, None)
    assert await leaderboard.standing("a") == RankedEntry(1, "a", "name-a", 10)
    assert await leaderboard.standing("b") == RankedEntry(2, "b", "name-b", 8)
    assert (await leaderboard.board(10)).seq == 0


async def test_replaying_an_older_entry_outside_the_top_changes_nothing(leaderboard: Leaderboard) -> None:
    await full(leaderboard)
    await leaderboard.apply(entry("low", 50, seconds=20))

    stale = await leaderboard.apply(entry("low", 5, seconds=19))

    assert (stale.rank, stale.changed) == (11, None)
    assert await leaderboard.standing("low") == RankedEntry(11, "low", "name-low", 50)


async def test_rebuild_starts_a_new_epoch_at_seq_zero(leaderboard: Leaderboard) -> None:
    first = await leaderboard.rebuild([entry("a", 1)])
    await leaderboard.apply(entry("b", 2))

    second = await leaderboard.rebuild([entry("a", 1), entry("b", 2)])
    again = await leaderboard.rebuild([entry("a", 1), entry("b", 2)])

    assert second.epoch != first.epoch
    assert again.epoch not in {first.epoch, second.epoch}
    assert (second.seq, again.seq) == (0, 0)
    assert (await leaderboard.board(10)).epoch == again.epoch


async def test_rebuild_replaces_the_whole_cache(leaderboard: Leaderboard) -> None:
    await leaderboard.rebuild([entry("gone", 99), entry("kept", 1)])

    rebuilt = await leaderboard.rebuild([entry("kept", 3), entry("zero", 0)])

    assert rebuilt.entries == (RankedEntry(1, "kept", "name-kept", 3),)
    assert await leaderboard.standing("gone") is None
    assert await leaderboard.standing("zero") is None


async def test_changes_after_a_rebuild_continue_from_its_seq(leaderboard: Leaderboard) -> None:
    rebuilt = await full(leaderboard)

    applied = await leaderboard.apply(entry("new", 1000, seconds=50))

    assert applied.changed is not None
    assert applied.changed.seq == rebuilt + 1


async def test_board_is_limited_and_ranked_from_one(leaderboard: Leaderboard) -> None:
    await full(leaderboard)
    await leaderboard.apply(entry("low", 5, seconds=20))

    three = await leaderboard.board(3)
    everyone = await leaderboard.board(50)

    assert [e.rank for e in three.entries] == [1, 2, 3]
    assert [e.user_id for e in three.entries] == ["top0", "top1", "top2"]
    assert len(everyone.entries) == 11
    assert everyone.entries[-1] == RankedEntry(11, "low", "name-low", 5)


async def test_board_json_agrees_with_board(leaderboard: Leaderboard) -> None:
    await full(leaderboard)
    for limit in (1, 10, 25):
        assert json.loads(await leaderboard.board_json(limit)) == board_body(await leaderboard.board(limit))


async def test_board_json_follows_changes_in_the_top(leaderboard: Leaderboard) -> None:
    await full(leaderboard)
    await leaderboard.board_json(10)

    await leaderboard.apply(entry("new", 1000, seconds=50))

    body = json.loads(await leaderboard.board_json(10))
    assert body == board_body(await leaderboard.board(10))
    assert body["entries"][0]["user_id"] == "new"


async def test_board_json_follows_changes_outside_the_top_ten(leaderboard: Leaderboard) -> None:
    await full(leaderboard)
    before = json.loads(await leaderboard.board_json(20))

    applied = await leaderboard.apply(entry("low", 5, seconds=20))
    after = json.loads(await leaderboard.board_json(20))

    assert applied.changed is None
    assert len(before["entries"]) == 10
    assert after == board_body(await leaderboard.board(20))
    assert after["entries"][10] == {"rank": 11, "user_id": "low", "display_name": "name-low", "score": 5}


async def test_standing_gives_score_and_rank(leaderboard: Leaderboard) -> None:
    await full(leaderboard)
    await leaderboard.apply(entry("low", 5, seconds=20))

    assert await leaderboard.standing("top3") == RankedEntry(4, "top3", "name-top3", 97)
    assert await leaderboard.standing("low") == RankedEntry(11, "low", "name-low", 5)


async def test_standing_of_an_unknown_user_is_none(leaderboard: Leaderboard) -> None:
    await full(leaderboard)

    assert await leaderboard.standing("nobody") is None


async def test_zero_scores_are_not_on_the_board(leaderboard: Leaderboard) -> None:
    await leaderboard.rebuild([entry("a", 1)])

    applied = await leaderboard.apply(entry("zero", 0, seconds=1))

    assert (applied.rank, applied.changed) == (None, None)
    assert await leaderboard.standing("zero") is None
    assert [e.user_id for e in (await leaderboard.board(10)).entries] == ["a"]


async def test_ties_are_broken_by_reached_at_then_user_id(leaderboard: Leaderboard) -> None:
    await leaderboard.rebuild([entry("c", 5, seconds=1), entry("b", 5, seconds=1), entry("a", 5, seconds=2)])

    assert [e.user_id for e in (await leaderboard.board(10)).entries] == ["b", "c", "a"]


async def test_ping_answers(leaderboard: Leaderboard) -> None:
    await leaderboard.ping()


async def test_a_built_cache_exists(leaderboard: Leaderboard) -> None:
    assert await leaderboard.exists()


async def test_rebuild_with_many_users_keeps_exact_order_and_ranks(leaderboard: Leaderboard) -> None:
    entries = [entry(f"u{i:05d}", score=1 + i % 7, seconds=(i * 7919) % 1000 / 1000) for i in range(3000)]
    await leaderboard.rebuild(entries)

    expected = sorted(entries, key=lambda e: (-e.score, e.reached_at, e.user_id))
    board = await leaderboard.board(100)
    assert [e.user_id for e in board.entries] == [e.user_id for e in expected[:100]]
    standing = await leaderboard.standing(expected[1234].user_id)
    assert standing is not None
    assert standing.rank == 1235


async def test_rebuild_from_streamed_row_chunks_equals_rebuild_from_entries(leaderboard: Leaderboard) -> None:
    # The Store's stream: chunks of (user_id, display_name, score, reached_us) rows in no order, some
    # larger than one load call, zeros left out, a score beyond a double's exact range kept exact.
    entries = [entry(f"u{i:05d}", score=i % 9, seconds=(i * 7919) % 5000 / 1000) for i in range(12_000)]
    entries.append(entry("huge", 2**62 + 1, seconds=1))  # not a double: must stay exact as text
    random.Random(7).shuffle(entries)
    rows = [score_row(e) for e in entries]

    async def stream() -> AsyncIterator[list[ScoreRow]]:
        bounds = [0, 11, 7011, 7012, len(rows)]  # uneven chunks, one of a single row
        for start, end in itertools.pairwise(bounds):
            yield rows[start:end]

    rebuilt = await leaderboard.rebuild(stream())

    expected = rank_entries(entries, limit=10)
    assert rebuilt.entries == expected
    assert (await leaderboard.board(10)).entries == expected
    assert expected[0] == RankedEntry(1, "huge", "name-huge", 2**62 + 1)
    ordered = sorted((e for e in entries if e.score > 0), key=lambda e: (-e.score, e.reached_at, e.user_id))
    for rank in (1, 2, 3, 500, 5555, len(ordered)):
        standing = await leaderboard.standing(ordered[rank - 1].user_id)
        assert standing is not None
        assert (standing.rank, standing.score) == (rank, ordered[rank - 1].score)
    zero = next(e for e in entries if e.score == 0)
    assert await leaderboard.standing(zero.user_id) is None


async def test_a_stream_that_fails_part_way_leaves_no_half_built_board(leaderboard: Leaderboard) -> None:
    before = await leaderboard.rebuild([entry("old", 7)])

    async def broken() -> AsyncIterator[list[ScoreRow]]:
        yield [score_row(entry("new", 9))]
        raise ConnectionError("the store went away")

    with pytest.raises(ConnectionError):
        await leaderboard.rebuild(broken())

    # Either the cache is gone (rebuilt later) or it is still the whole previous board.
    if await leaderboard.exists():
        assert await leaderboard.board(10) == before
    rebuilt = await leaderboard.rebuild([entry("new", 9)])
    assert rebuilt.entries == (RankedEntry(1, "new", "name-new", 9),)
