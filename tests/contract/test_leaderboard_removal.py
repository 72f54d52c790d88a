"""The Leaderboard contract for taking a user off the board (a ban, a score corrected to 0), run
against every adapter."""

from __future__ import annotations

from scoreboard.domain.model import RankedEntry
from scoreboard.domain.ranking import rank_entries
from scoreboard.leaderboard.base import Leaderboard
from tests.contract.test_leaderboard import T0, entry, full, top_ten


async def test_removing_a_top_user_publishes_the_board_without_them(leaderboard: Leaderboard) -> None:
    seq = await full(leaderboard)

    applied = await leaderboard.remove("top3", T0.replace(hour=13))

    assert applied.rank is None
    assert applied.changed is not None
    assert applied.changed.seq == seq + 1
    assert [e.user_id for e in applied.changed.entries] == [f"top{i}" for i in range(10) if i != 3]
    assert await leaderboard.standing("top3") is None
    assert await leaderboard.standing("top4") == RankedEntry(4, "top4", "name-top4", 96)


async def test_removing_a_user_below_the_top_publishes_nothing(leaderboard: Leaderboard) -> None:
    await full(leaderboard)
    await leaderboard.apply(entry("low", 1, seconds=5))

    applied = await leaderboard.remove("low", T0.replace(hour=13))

    assert applied.changed is None
    assert await leaderboard.standing("low") is None


async def test_removal_keeps_tied_users_in_order(leaderboard: Leaderboard) -> None:
    tied = [entry(name, 5, seconds=i) for i, name in enumerate("abcd")]
    await leaderboard.rebuild([*tied, entry("e", 3)])

    await leaderboard.remove("b", T0.replace(hour=13))
    await leaderboard.apply(entry("f", 5, seconds=1.5))

    expected = rank_entries([tied[0], tied[2], tied[3], entry("f", 5, seconds=1.5), entry("e", 3)], 10)
    assert (await leaderboard.board(10)).entries == expected
    for ranked in expected:
        assert await leaderboard.standing(ranked.user_id) == ranked


async def test_a_late_replay_older_than_the_removal_does_not_bring_the_user_back(
    leaderboard: Leaderboard,
) -> None:
    await leaderboard.rebuild([entry("a", 5, seconds=1), entry("b", 3)])
    await leaderboard.remove("a", T0.replace(minute=1))

    replayed = await leaderboard.apply(entry("a", 6, seconds=30))

    assert replayed.changed is None
    assert replayed.rank is None
    assert [e.user_id for e in (await leaderboard.board(10)).entries] == ["b"]


async def test_an_entry_newer_than_the_removal_brings_the_user_back(leaderboard: Leaderboard) -> None:
    await leaderboard.rebuild([entry("a", 5, seconds=1), entry("b", 3)])
    await leaderboard.remove("a", T0.replace(minute=1))

    restored = await leaderboard.apply(entry("a", 5, seconds=61))

    assert restored.rank == 1
    assert restored.changed is not None
    assert [e.user_id for e in restored.changed.entries] == ["a", "b"]


async def test_applying_a_score_of_zero_is_a_removal(leaderboard: Leaderboard) -> None:
    await leaderboard.rebuild([entry("a", 5, seconds=1), entry("b", 3)])

    removed = await leaderboard.apply(entry("a", 0, seconds=60))
    replayed = await leaderboard.apply(entry("a", 5, seconds=30))

    assert removed.changed is not None
    assert [e.user_id for e in removed.changed.entries] == ["b"]
    assert replayed.changed is None


async def test_rebuild_forgets_removals(leaderboard: Leaderboard) -> None:
    await leaderboard.rebuild(top_ten())
    await leaderboard.remove("top0", T0.replace(hour=13))
    await leaderboard.rebuild(top_ten()[1:])

    back = await leaderboard.apply(entry("top0", 100, seconds=30))

    assert back.rank == 1
