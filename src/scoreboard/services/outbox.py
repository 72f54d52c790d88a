"""The outbox relay: committed score events reach the cache and broker at least once.

The write path applies each event at once and notes it; the relay marks noted events published in
one batched write, and replays any event still unpublished after a grace period (the cache or
broker failed after the commit, or the process died between commit and apply).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta

from scoreboard.observability.logging import get_logger
from scoreboard.observability.metrics import Metrics
from scoreboard.services.cache import CacheKeeper
from scoreboard.services.clock import Clock
from scoreboard.services.scores import ScoreService
from scoreboard.store.base import Store
from scoreboard.tasks import stop

log = get_logger("scoreboard.outbox")


class OutboxRelay:
    def __init__(
        self,
        store: Store,
        scores: ScoreService,
        keeper: CacheKeeper,
        clock: Clock,
        metrics: Metrics,
        interval_seconds: float = 1.0,
        grace_seconds: float = 5.0,
        batch: int = 500,
    ) -> None:
        self._store, self._scores, self._clock, self._metrics = store, scores, clock, metrics
        self._keeper = keeper
        self._interval = interval_seconds
        self._grace = timedelta(seconds=grace_seconds)
        self._batch = batch

    async def run(self) -> None:
        """Relay until cancelled; a failing round is logged and retried on the next tick."""
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.tick()
            except Exception as error:
                log.warning("outbox.relay_failed", error=str(error))

    async def tick(self) -> int:
        """One round: mark applied events published, rebuild a lost cache, replay overdue events.
        Returns the number of events replayed."""
        await self.flush()
        await self._keeper.ensure()
        now = self._clock()
        overdue = await self._store.pending_events(now - self._grace, self._batch)
        self._metrics.outbox_backlog.set(len(overdue))
        oldest = (now - overdue[0].created_at).total_seconds() if overdue else 0.0
        self._metrics.outbox_oldest_age.set(oldest)
        for event in overdue:
            await self._scores.apply(event.entry, event.event_id)
        await self.flush()
        if overdue:
            log.info("outbox.replayed", events=len(overdue), oldest_age_seconds=round(oldest, 3))
        return len(overdue)

    async def flush(self) -> None:
        done, self._scores.applied_events = self._scores.applied_events, []
        try:
            await self._store.mark_published(done)
        except Exception:
            self._scores.applied_events.extend(done)
            raise

    async def drain_all(self) -> None:
        """Mark every pending event published: used after a rebuild that already reflects them."""
        while events := await self._store.pending_events(self._clock() + self._grace, self._batch):
            await self._store.mark_published([e.event_id for e in events])


@contextlib.asynccontextmanager
async def running(relay: OutboxRelay) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(relay.run(), name="scoreboard-outbox-relay")
    try:
        yield task
    finally:
        await stop(task)
        with contextlib.suppress(Exception):
            await relay.flush()
