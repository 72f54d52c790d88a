"""Keeps the leaderboard cache derived from the Store: built when missing, rebuilt after a loss.

The Store is the truth. When the cache is found empty (first start, Redis restarted, flushed) it is
rebuilt from every stored score under a new epoch, and the new board is published so every
instance's clients take it as truth. Events committed while it was gone stay in the outbox and are
replayed (idempotently) by the relay.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence

from scoreboard.domain.model import Board, ScoreRow
from scoreboard.leaderboard.base import Leaderboard
from scoreboard.observability.logging import get_logger
from scoreboard.observability.metrics import Metrics
from scoreboard.store.base import Store

log = get_logger("scoreboard.cache")


class CacheKeeper:
    def __init__(
        self, store: Store, board: Leaderboard, publish: Callable[[Board], Awaitable[None]], metrics: Metrics
    ) -> None:
        self._store, self._board, self._publish, self._metrics = store, board, publish, metrics

    async def ensure(self) -> Board | None:
        """Rebuild if the cache holds no board; the new board, or None when nothing was needed."""
        if await self._board.exists():
            return None
        return await self.rebuild()

    async def rebuild(self) -> Board:
        return (await self.rebuild_counted())[0]

    async def rebuild_counted(self) -> tuple[Board, int]:
        """Rebuild from every stored score, streamed from the Store into the cache chunk by chunk
        (never all in memory at once); the new board and the number of users on it."""
        users = 0

        async def counted() -> AsyncGenerator[Sequence[ScoreRow], None]:
            nonlocal users
            async with contextlib.aclosing(self._store.score_rows()) as rows:
                async for chunk in rows:
                    users += len(chunk)
                    yield chunk

        board = await self._board.rebuild(counted())
        self._metrics.cache_rebuilds.inc()
        log.info("cache.rebuilt", epoch=board.epoch, users=users)
        await self._publish(board)
        return board, users
