"""The hub and its mailboxes, without sockets: what each subscriber is sent, in which order, and when
a slow one is conflated."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from scoreboard.domain.model import Board, RankedEntry
from scoreboard.observability.metrics import Metrics
from scoreboard.realtime.hub import REORDER_WAIT_SECONDS, Frame, Hub, Mailbox
from scoreboard.realtime.messages import encode_update

EPOCH = 7


def update(seq: int, epoch: int = EPOCH) -> bytes:
    """The broker message for a board whose leader has `seq` points (so each board differs)."""
    leader = RankedEntry(1, "u-leader", "Leader", seq)
    runner_up = RankedEntry(2, "u-runner", "Runner-up", 0)
    return encode_update(Board(epoch, seq, (leader, runner_up)))


def hub_at(seq: int, epoch: int = EPOCH, history: int = 1000) -> Hub:
    """A hub that started at (epoch, 0) and has since received updates 1..seq."""
    hub = Hub(Metrics(), history=history)
    hub.reset(Board(epoch, 0, ()))
    for n in range(1, seq + 1):
        hub.on_message(update(n, epoch))
    return hub


async def drain(mailbox: Mailbox) -> list[dict[str, Any]]:
    """Every frame queued so far, decoded, without waiting for more."""
    frames = []
    while (frame := await mailbox.next(idle_seconds=0)) is not None:
        frames.append(json.loads(frame.text))
    return frames


def kinds_and_seqs(frames: list[dict[str, Any]]) -> list[tuple[str, int]]:
    return [(frame["type"], frame["seq"]) for frame in frames]


def subscribed(hub: Hub, since: tuple[int, int] | None = None, capacity: int = 32) -> Mailbox:
    mailbox = Mailbox(hub, "ws", capacity=capacity)
    hub.subscribe(mailbox, since)
    return mailbox


def conflated(metrics: Metrics) -> float:
    value = metrics.registry.get_sample_value(
        "scoreboard_realtime_slow_clients_total", {"transport": "ws", "action": "conflated"}
    )
    return value or 0.0


async def test_every_subscriber_gets_the_same_snapshot_then_the_same_updates_in_order() -> None:
    hub = hub_at(3)
    first, second = subscribed(hub), subscribed(hub)
    for n in (4, 5, 6):
        hub.on_message(update(n))

    received = await drain(first)
    assert received == await drain(second)
    assert kinds_and_seqs(received) == [("snapshot", 3), ("update", 4), ("update", 5), ("update", 6)]
    assert received[0]["epoch"] == EPOCH
    assert received[0]["top"][0] == {"rank": 1, "user_id": "u-leader", "display_name": "Leader", "score": 3}
    assert received[-1]["top"][0]["score"] == 6


async def test_snapshot_is_the_current_board_not_a_replay() -> None:
    hub = hub_at(5)
    received = await drain(subscribed(hub))
    assert kinds_and_seqs(received) == [("snapshot", 5)]
    assert received[0]["channel"] == "scoreboard_updates"


async def test_update_frame_is_forwarded_byte_for_byte_and_framed_for_sse() -> None:
    hub = hub_at(1)
    mailbox = subscribed(hub, since=(EPOCH, 1))
    hub.on_message(update(2))
    frame = await mailbox.next(idle_seconds=0)
    assert frame is not None
    assert frame.text.encode() == update(2)
    assert frame.sse == b"id: %d:2\ndata: %s\n\n" % (EPOCH, update(2))


@pytest.mark.parametrize("stale", [3, 2, 1], ids=["repeated", "older", "much-older"])
async def test_a_repeated_or_older_seq_is_ignored(stale: int) -> None:
    hub = hub_at(3)
    mailbox = subscribed(hub, since=(EPOCH, 3))
    hub.on_message(update(stale))
    assert await drain(mailbox) == []
    assert hub.board.seq == 3
    assert hub.board.entries[0].score == 3


async def test_a_gap_clears_history_so_since_before_the_gap_gets_a_snapshot() -> None:
    hub = hub_at(3)
    live = subscribed(hub, since=(EPOCH, 3))
    hub.on_message(update(6))  # 4 and 5 were lost on the way
    hub.on_message(update(7))
    await asyncio.sleep(REORDER_WAIT_SECONDS * 2)  # the hub waits a moment for 4 and 5, then moves on

    assert kinds_and_seqs(await drain(live)) == [("update", 6), ("update", 7)]
    assert kinds_and_seqs(await drain(subscribed(hub, since=(EPOCH, 2)))) == [("snapshot", 7)]
    assert kinds_and_seqs(await drain(subscribed(hub, since=(EPOCH, 3)))) == [("snapshot", 7)]


async def test_since_after_the_gap_is_still_replayed() -> None:
    hub = hub_at(3)
    hub.on_message(update(6))
    hub.on_message(update(7))
    hub.on_message(update(8))
    await asyncio.sleep(REORDER_WAIT_SECONDS * 2)
    assert kinds_and_seqs(await drain(subscribed(hub, since=(EPOCH, 6)))) == [("update", 7), ("update", 8)]


async def test_an_early_update_waits_for_the_missing_one_so_everyone_sees_one_order() -> None:
    hub = hub_at(3)
    live = subscribed(hub, since=(EPOCH, 3))
    hub.on_message(update(5))  # another instance's publish overtook seq 4
    assert await drain(live) == []
    hub.on_message(update(4))

    assert kinds_and_seqs(await drain(live)) == [("update", 4), ("update", 5)]
    assert kinds_and_seqs(await drain(subscribed(hub, since=(EPOCH, 3)))) == [("update", 4), ("update", 5)]


async def test_since_within_history_replays_the_missed_updates_in_order() -> None:
    hub = hub_at(10)
    received = await drain(subscribed(hub, since=(EPOCH, 6)))
    assert kinds_and_seqs(received) == [("update", 7), ("update", 8), ("update", 9), ("update", 10)]
    assert [frame["top"][0]["score"] for frame in received] == [7, 8, 9, 10]


async def test_replay_is_followed_by_live_updates_without_a_gap_or_repeat() -> None:
    hub = hub_at(4)
    mailbox = subscribed(hub, since=(EPOCH, 2))
    hub.on_message(update(5))
    assert [seq for _, seq in kinds_and_seqs(await drain(mailbox))] == [3, 4, 5]


async def test_since_equal_to_the_current_seq_replays_nothing() -> None:
    hub = hub_at(4)
    mailbox = subscribed(hub, since=(EPOCH, 4))
    assert await drain(mailbox) == []
    hub.on_message(update(5))
    assert kinds_and_seqs(await drain(mailbox)) == [("update", 5)]


async def test_since_from_the_start_of_an_epoch_replays_everything_history_holds() -> None:
    hub = hub_at(3)
    assert kinds_and_seqs(await drain(subscribed(hub, since=(EPOCH, 0)))) == [
        ("update", 1),
        ("update", 2),
        ("update", 3),
    ]


@pytest.mark.parametrize(
    "since",
    [(EPOCH - 1, 2), (EPOCH + 1, 2), (EPOCH, 9)],
    ids=["older-epoch", "newer-epoch", "seq-from-the-future"],
)
async def test_since_that_history_cannot_serve_gets_a_snapshot(since: tuple[int, int]) -> None:
    hub = hub_at(4)
    assert kinds_and_seqs(await drain(subscribed(hub, since=since))) == [("snapshot", 4)]


async def test_since_older_than_the_bounded_history_gets_a_snapshot() -> None:
    hub = hub_at(10, history=3)  # keeps 8, 9 and 10
    assert kinds_and_seqs(await drain(subscribed(hub, since=(EPOCH, 6)))) == [("snapshot", 10)]
    assert kinds_and_seqs(await drain(subscribed(hub, since=(EPOCH, 7)))) == [
        ("update", 8),
        ("update", 9),
        ("update", 10),
    ]


async def test_a_full_mailbox_is_conflated_to_the_latest_snapshot_while_another_keeps_every_frame() -> None:
    hub = hub_at(0)
    slow = subscribed(hub, since=(EPOCH, 0), capacity=4)
    healthy = subscribed(hub, since=(EPOCH, 0), capacity=100)
    for n in range(1, 11):
        hub.on_message(update(n))

    assert kinds_and_seqs(await drain(healthy)) == [("update", n) for n in range(1, 11)]
    slow_received = await drain(slow)
    assert slow_received[0]["type"] == "snapshot"
    assert slow_received[-1]["seq"] == 10
    assert len(slow_received) < 10
    assert conflated(hub.metrics) > 0


async def test_a_conflated_mailbox_gets_the_latest_snapshot_next_not_its_backlog() -> None:
    hub = hub_at(0)
    slow = subscribed(hub, since=(EPOCH, 0), capacity=2)
    for n in range(1, 4):  # the third offer finds the mailbox full
        hub.on_message(update(n))

    assert kinds_and_seqs(await drain(slow)) == [("snapshot", 3)]
    assert conflated(hub.metrics) == 1
    hub.on_message(update(4))
    assert kinds_and_seqs(await drain(slow)) == [("update", 4)]


async def test_after_a_snapshot_a_conflated_mailbox_never_sends_an_older_seq() -> None:
    hub = hub_at(0)
    slow = subscribed(hub, since=(EPOCH, 0), capacity=2)
    for n in range(1, 6):  # 3 conflates; 4 and 5 arrive before the writer takes the snapshot
        hub.on_message(update(n))
    assert kinds_and_seqs(await drain(slow)) == [("snapshot", 5)]


async def test_a_mailbox_within_capacity_is_never_conflated() -> None:
    hub = hub_at(0)
    mailbox = subscribed(hub, since=(EPOCH, 0), capacity=5)
    for n in range(1, 6):
        hub.on_message(update(n))
    assert [seq for _, seq in kinds_and_seqs(await drain(mailbox))] == [1, 2, 3, 4, 5]
    assert conflated(hub.metrics) == 0


async def test_unsubscribe_stops_delivery() -> None:
    hub = hub_at(1)
    leaving, staying = subscribed(hub, since=(EPOCH, 1)), subscribed(hub, since=(EPOCH, 1))
    hub.unsubscribe(leaving)
    hub.on_message(update(2))
    assert await drain(leaving) == []
    assert kinds_and_seqs(await drain(staying)) == [("update", 2)]
    assert hub.subscribers == 1


async def test_a_closed_mailbox_yields_nothing_more() -> None:
    hub = hub_at(1)
    mailbox = subscribed(hub)
    mailbox.close()
    assert await mailbox.next() is None


async def test_next_waits_for_the_next_update() -> None:
    hub = hub_at(1)
    mailbox = subscribed(hub, since=(EPOCH, 1))
    assert await mailbox.next(idle_seconds=0.01) is None
    hub.on_message(update(2))
    frame = await mailbox.next(idle_seconds=1)
    assert frame is not None
    assert (frame.epoch, frame.seq) == (EPOCH, 2)


async def test_reset_to_a_new_epoch_makes_every_subscriber_take_a_snapshot() -> None:
    hub = hub_at(3)
    first, second = subscribed(hub, since=(EPOCH, 3)), subscribed(hub, since=(EPOCH, 3))
    hub.reset(Board(EPOCH + 1, 0, (RankedEntry(1, "u-new", "Newcomer", 1),)))

    for mailbox in (first, second):
        received = await drain(mailbox)
        assert kinds_and_seqs(received) == [("snapshot", 0)]
        assert received[0]["epoch"] == EPOCH + 1
        assert received[0]["top"][0]["user_id"] == "u-new"


async def test_reset_drops_queued_frames_of_the_old_epoch() -> None:
    hub = hub_at(1)
    mailbox = subscribed(hub, since=(EPOCH, 1))
    hub.on_message(update(2))  # queued, not yet sent
    hub.reset(Board(EPOCH + 1, 0, ()))
    received = await drain(mailbox)
    assert [frame["epoch"] for frame in received] == [EPOCH + 1]


async def test_after_reset_the_old_epoch_history_cannot_be_replayed() -> None:
    hub = hub_at(3)
    hub.reset(Board(EPOCH + 1, 0, ()))
    hub.on_message(update(1, EPOCH + 1))
    assert kinds_and_seqs(await drain(subscribed(hub, since=(EPOCH, 2)))) == [("snapshot", 1)]
    assert kinds_and_seqs(await drain(subscribed(hub, since=(EPOCH + 1, 0)))) == [("update", 1)]


async def test_broadcast_time_is_observed_once_every_subscriber_has_the_frame() -> None:
    hub = hub_at(0)
    first, second = subscribed(hub, since=(EPOCH, 0)), subscribed(hub, since=(EPOCH, 0))
    hub.on_message(update(1))

    def observed() -> float:
        count = hub.metrics.registry.get_sample_value("scoreboard_broadcast_duration_seconds_count")
        return count or 0.0

    sent = await first.next(idle_seconds=0)
    assert isinstance(sent, Frame)
    sent.delivered()
    assert observed() == 0
    sent = await second.next(idle_seconds=0)
    assert isinstance(sent, Frame)
    sent.delivered()
    assert observed() == 1


async def test_going_away_hangs_up_on_every_subscriber_and_stops_delivery() -> None:
    hub = hub_at(1)
    said: list[str] = []

    def farewell_of(name: str) -> Any:
        async def farewell() -> None:
            said.append(name)

        return farewell

    first = Mailbox(hub, "ws", farewell=farewell_of("first"))
    second = Mailbox(hub, "sse")  # no farewell: its stream just ends
    hub.subscribe(first)
    hub.subscribe(second)

    await hub.going_away()
    hub.on_message(update(2))

    assert said == ["first"]
    assert hub.subscribers == 0
    assert first.closed
    assert second.closed
    assert await second.next(idle_seconds=0) is None
