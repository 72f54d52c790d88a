"""The Python client's pure rules: which board messages apply, and the reconnection back-off."""

from __future__ import annotations

from scoreboard.client import Backoff, BoardState, Position
from scoreboard.client.board import BoardMessage


def frame(kind: str, epoch: int, seq: int) -> BoardMessage:
    return BoardMessage(kind, epoch, seq, [])


def test_the_first_snapshot_is_the_truth() -> None:
    assert BoardState().judge(frame("snapshot", 7, 40)) == "apply"


def test_an_update_before_any_snapshot_asks_for_one() -> None:
    assert BoardState().judge(frame("update", 7, 40)) == "resync"


def test_the_next_seq_applies_and_moves_the_position() -> None:
    state = BoardState(Position(7, 40))
    assert state.judge(frame("update", 7, 41)) == "apply"
    board = state.apply(frame("update", 7, 41))
    assert (board.kind, state.position) == ("update", Position(7, 41))


def test_old_and_repeated_seqs_are_ignored() -> None:
    state = BoardState(Position(7, 40))
    assert [state.judge(frame(k, 7, s)) for k, s in [("update", 40), ("update", 3), ("snapshot", 39)]] == [
        "stale",
        "stale",
        "stale",
    ]


def test_a_skipped_seq_is_a_gap_that_asks_to_resubscribe() -> None:
    assert BoardState(Position(7, 40)).judge(frame("update", 7, 42)) == "resync"


def test_a_new_epoch_waits_for_its_snapshot_then_follows_it() -> None:
    state = BoardState(Position(7, 40))
    assert state.judge(frame("update", 8, 1)) == "resync"
    assert state.judge(frame("snapshot", 8, 0)) == "apply"
    state.apply(frame("snapshot", 8, 0))
    assert state.judge(frame("update", 8, 1)) == "apply"


def test_back_off_doubles_up_to_the_cap_with_half_a_step_of_jitter() -> None:
    highest = Backoff(initial=0.1, maximum=1.0, random=lambda: 1.0)
    lowest = Backoff(initial=0.1, maximum=1.0, random=lambda: 0.0)
    assert [round(highest.delay(a), 3) for a in (0, 1, 2, 3, 4, 9)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert [round(lowest.delay(a), 3) for a in (0, 1, 2, 3, 4, 9)] == [0.05, 0.1, 0.2, 0.4, 0.5, 0.5]


def test_a_gap_asks_once_waits_and_after_the_patience_takes_the_next_message() -> None:
    state = BoardState(Position(7, 40), patience=0.1)
    assert state.receive(frame("update", 7, 42), 1.0) == (False, True)
    assert state.receive(frame("update", 7, 43), 1.05) == (False, False)
    assert state.receive(frame("update", 7, 44), 1.1) == (True, False)
    state.apply(frame("update", 7, 44))
    assert state.resync_since is None
    assert state.receive(frame("update", 7, 46), 2.0) == (False, True)


def test_the_replay_closing_the_gap_ends_the_wait() -> None:
    state = BoardState(Position(7, 40), patience=0.1)
    state.receive(frame("update", 7, 42), 1.0)
    assert state.receive(frame("update", 7, 41), 1.01) == (True, False)
    state.apply(frame("update", 7, 41))
    assert state.receive(frame("update", 7, 42), 1.02) == (True, False)
