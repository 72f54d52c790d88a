"""Board order and top-10 change detection: the rules every store and cache must agree on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from scoreboard.domain.model import RankedEntry, ScoreEntry
from scoreboard.domain.ranking import entry_key, rank_entries, to_micros, top_changed

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def entry(user_id: str, score: int, seconds: float = 0, name: str | None = None) -> ScoreEntry:
    return ScoreEntry(user_id, name or user_id, score, T0 + timedelta(seconds=seconds))


def ids(entries: tuple[RankedEntry, ...]) -> list[str]:
    return [e.user_id for e in entries]


def test_higher_score_ranks_first() -> None:
    ranked = rank_entries([entry("a", 1), entry("b", 3), entry("c", 2)], limit=10)

    assert ids(ranked) == ["b", "c", "a"]
    assert [e.rank for e in ranked] == [1, 2, 3]


def test_tie_goes_to_whoever_reached_the_score_first() -> None:
    ranked = rank_entries([entry("a", 5, seconds=2), entry("b", 5, seconds=1)], limit=10)

    assert ids(ranked) == ["b", "a"]


def test_tie_break_is_exact_to_the_microsecond() -> None:
    ranked = rank_entries([entry("a", 5, seconds=0.000002), entry("b", 5, seconds=0.000003)], limit=10)

    assert ids(ranked) == ["a", "b"]


def test_full_tie_is_broken_by_user_id() -> None:
    ranked = rank_entries([entry("b", 5), entry("c", 5), entry("a", 5)], limit=10)

    assert ids(ranked) == ["a", "b", "c"]


def test_score_outweighs_reaching_it_earlier() -> None:
    ranked = rank_entries([entry("early", 1, seconds=0), entry("late", 2, seconds=99)], limit=10)

    assert ids(ranked) == ["late", "early"]


def test_rank_entries_leaves_out_zero_scores() -> None:
    ranked = rank_entries([entry("zero", 0), entry("one", 1)], limit=10)

    assert ids(ranked) == ["one"]


def test_rank_entries_keeps_only_the_best_limit() -> None:
    entries = [entry(f"u{i:02d}", i) for i in range(1, 16)]

    ranked = rank_entries(entries, limit=10)

    assert len(ranked) == 10
    assert ranked[0] == RankedEntry(1, "u15", "u15", 15)
    assert ranked[-1] == RankedEntry(10, "u06", "u06", 6)


def test_rank_entries_of_nothing_is_empty() -> None:
    assert rank_entries([], limit=10) == ()
    assert rank_entries([entry("a", 1)], limit=0) == ()


def test_entry_key_sorts_in_board_order() -> None:
    entries = [entry("c", 1), entry("b", 2, seconds=5), entry("a", 2, seconds=1)]

    assert [e.user_id for e in sorted(entries, key=entry_key)] == ["a", "b", "c"]


def test_to_micros_keeps_every_microsecond() -> None:
    moment = datetime(2024, 5, 1, 12, 0, 0, 999_999, tzinfo=UTC)

    assert to_micros(moment) == int(datetime(2024, 5, 1, 12, tzinfo=UTC).timestamp()) * 1_000_000 + 999_999
    assert to_micros(moment + timedelta(microseconds=1)) - to_micros(moment) == 1


BEFORE = rank_entries([entry("a", 3), entry("b", 2), entry("c", 1)], limit=10)


def test_identical_top_is_unchanged() -> None:
    again = rank_entries([entry("c", 1), entry("b", 2), entry("a", 3)], limit=10)

    assert not top_changed(BEFORE, again)
    assert not top_changed(list(BEFORE), BEFORE)


def test_new_member_changes_the_top() -> None:
    after = rank_entries([entry("a", 3), entry("b", 2), entry("d", 1)], limit=10)

    assert top_changed(BEFORE, after)


def test_an_extra_member_changes_the_top() -> None:
    after = rank_entries([entry("a", 3), entry("b", 2), entry("c", 1), entry("d", 1, seconds=1)], limit=10)

    assert top_changed(BEFORE, after)


def test_new_order_changes_the_top() -> None:
    after = rank_entries([entry("a", 3), entry("b", 2), entry("c", 4)], limit=10)

    assert top_changed(BEFORE, after)


def test_new_score_without_reordering_changes_the_top() -> None:
    after = rank_entries([entry("a", 9), entry("b", 2), entry("c", 1)], limit=10)

    assert top_changed(BEFORE, after)


def test_new_display_name_changes_the_top() -> None:
    after = rank_entries([entry("a", 3, name="Alice"), entry("b", 2), entry("c", 1)], limit=10)

    assert top_changed(BEFORE, after)


def test_when_a_score_was_reached_alone_does_not_change_the_top() -> None:
    after = rank_entries([entry("a", 3, seconds=7), entry("b", 2, seconds=8), entry("c", 1)], limit=10)

    assert not top_changed(BEFORE, after)


def test_changes_below_the_top_do_not_change_it() -> None:
    crowd = [entry(f"u{i:02d}", 100 + i) for i in range(10)]
    before = rank_entries([*crowd, entry("low", 1)], limit=10)
    after = rank_entries([*crowd, entry("low", 50)], limit=10)

    assert not top_changed(before, after)
