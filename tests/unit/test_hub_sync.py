"""A hub whose broker dropped updates catches up with the leaderboard by itself."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from scoreboard.domain.model import ScoreEntry
from scoreboard.leaderboard.memory import MemoryLeaderboard
from scoreboard.observability.metrics import Metrics
from scoreboard.realtime.hub import REORDER_WAIT_SECONDS, Hub
from scoreboard.realtime.messages import encode_update
from scoreboard.realtime.sync import HubSync

T0 = datetime(2026, 1, 1, tzinfo=UTC)


async def hub_behind() -> tuple[Hub, MemoryLeaderboard, HubSync]:
    board = MemoryLeaderboard()
    hub = Hub(Metrics())
    hub.reset(await board.rebuild([]))
    for score in (1, 2, 3):  # applied, but the broker never delivered them to this hub
        await board.apply(ScoreEntry("u1", "Ann", score, T0.replace(second=score)))
    return hub, board, HubSync(hub, board)


async def test_a_hub_behind_on_two_checks_is_fed_the_current_board() -> None:
    hub, board, sync = await hub_behind()

    first, second = await sync.check(), await sync.check()

    assert (first, second) == (False, True)
    assert hub.board == await board.board(10)


async def test_a_hub_in_step_is_left_alone() -> None:
    board = MemoryLeaderboard()
    hub = Hub(Metrics())
    hub.reset(await board.rebuild([]))
    sync = HubSync(hub, board)

    assert [await sync.check() for _ in range(3)] == [False, False, False]
    assert hub.board.seq == 0


async def test_a_hub_that_caught_up_by_itself_is_not_fed_again() -> None:
    hub, board, sync = await hub_behind()
    assert not await sync.check()
    changed = await board.board(10)
    hub.on_message(encode_update(changed))  # the late message arrives after all
    await asyncio.sleep(REORDER_WAIT_SECONDS * 2)  # (past a gap, the hub waits a moment first)

    assert not await sync.check()
    assert hub.board == changed
