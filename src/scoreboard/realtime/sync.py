"""Keeps the hub in step with the leaderboard when the broker dropped something.

Pub/Sub delivery is at-most-once: a broker reconnect can lose the last updates, and if the board
then stays still the hub would show a stale top 10 forever. Every few seconds the hub's position is
compared with the leaderboard's; when the hub has been behind on two checks in a row (not merely
racing a message in flight) the current board is fed to it as an update.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from scoreboard.domain.ranking import TOP_SIZE
from scoreboard.leaderboard.base import Leaderboard
from scoreboard.observability.logging import get_logger
from scoreboard.realtime.hub import Hub
from scoreboard.realtime.messages import encode_update
from scoreboard.tasks import stop

log = get_logger("scoreboard.realtime")
INTERVAL_SECONDS = 2.0


class HubSync:
    def __init__(self, hub: Hub, board: Leaderboard) -> None:
        self._hub, self._board = hub, board
        self._behind_since: tuple[int, int] | None = None

    async def check(self) -> bool:
        """One comparison; True when the hub was fed the leaderboard's board."""
        board = await self._board.board(TOP_SIZE)
        mine = (self._hub.board.epoch, self._hub.board.seq)
        theirs = (board.epoch, board.seq)
        if theirs == mine or (board.epoch == mine[0] and board.seq < mine[1]):
            self._behind_since = None
            return False
        if self._behind_since != mine:
            self._behind_since = mine  # first sighting: maybe a message is still on its way
            return False
        log.warning("hub.resynced", hub_epoch=mine[0], hub_seq=mine[1], epoch=board.epoch, seq=board.seq)
        self._behind_since = None
        self._hub.catch_up(encode_update(board))
        return True

    async def run(self, interval: float = INTERVAL_SECONDS) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.check()
            except Exception as error:
                log.debug("hub.sync_skipped", error=str(error))


@contextlib.asynccontextmanager
async def syncing(sync: HubSync) -> AsyncIterator[None]:
    task = asyncio.create_task(sync.run(), name="scoreboard-hub-sync")
    try:
        yield
    finally:
        await stop(task)
