"""Read routing for PostgreSQL: read-only queries go to a streaming replica, unless the replica has
not yet replayed what a reader must see.

Read-your-writes by WAL position, not by a timer. After every committed batch the writer notes the
primary's WAL insert position (`pg_current_wal_insert_lsn()`, which lies past the batch's commit
record); the store remembers it for each user the batch wrote. A read about a user who wrote
needs the replica to have replayed that far (`pg_last_wal_replay_lsn()`); a board read needs
everything this process has committed. The replica's replay position only grows, so the highest one
seen is kept and asked again only when a read needs more: a reader who wrote nothing lately costs
no extra round trip. A replica that is behind, unreachable or failing sends the read to the primary:
a lagging replica can make reads slower, never older than the reader's own writes.

The positions are this process's: another instance that took a user's write is not known here.
Behind a load balancer the cached reads (Redis) are unaffected; the Store is read only when the cache
fails. See docs/deploy.md, "Read replicas".
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg

from scoreboard.observability.logging import get_logger
from scoreboard.store.postgres_writer import borrowed, is_database_error

T = TypeVar("T")

log = get_logger("scoreboard.store")

RETRY_REPLICA_SECONDS = 5.0  # after a replica failure, reads go to the primary this long
MAX_TRACKED_WRITERS = 100_000  # users whose last commit position is remembered; beyond: see _forget
_REPLAY_LSN = "SELECT pg_last_wal_replay_lsn()::text"


def parse_lsn(text: str) -> int:
    """A WAL position as PostgreSQL writes it (`16/B374D848`) as one comparable number."""
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


class UseThePrimary(Exception):
    """The replica cannot serve this read (behind, down, or off): read from the primary."""


class ReadReplica:
    """A pool on the replica and what it takes for a read to be served there."""

    def __init__(
        self,
        url: str,
        timeout: float,
        pool_size: int,
        session: dict[str, str],
        max_writers: int = MAX_TRACKED_WRITERS,
    ) -> None:
        if not url.startswith(("postgresql://", "postgres://")):
            raise ValueError(f"not a PostgreSQL URL: {url.split('@')[-1]!r} (expected postgresql://...)")
        self.url = url
        self._timeout = timeout
        self._pool_size = pool_size
        self._session = session
        self._max_writers = max_writers
        self._pool: asyncpg.Pool | None = None
        self._replayed = 0  # the furthest replay position the replica has shown
        self._latest = 0  # the newest commit this process made
        self._floor = 0  # what a forgotten writer committed: every user read waits for it
        self._writers: dict[str, int] = {}  # user id -> position of their last commit, oldest first
        self._down_until = 0.0
        self.served: Counter[str] = Counter()  # "replica", "behind" (sent to the primary), "failed"

    async def open(self) -> None:
        self._pool = await asyncpg.create_pool(
            self.url,
            min_size=0,
            max_size=self._pool_size,
            timeout=self._timeout,
            command_timeout=self._timeout,
            max_inactive_connection_lifetime=60.0,
            server_settings={**self._session, "application_name": "scoreboard-read"},
        )

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), self._timeout)
            except TimeoutError:
                pool.terminate()

    def committed(self, user_id: str, lsn: int) -> None:
        """`user_id`'s write is durable on the primary at WAL position `lsn`."""
        self._latest = max(self._latest, lsn)
        self._writers.pop(user_id, None)  # re-inserted last: the dict stays oldest first
        self._writers[user_id] = lsn
        if len(self._writers) > self._max_writers:
            self._forget()

    def _forget(self) -> None:
        """Bound the memory: drop writers the replica has caught up with; if still too many, the
        oldest half go and their positions become a floor every user read waits for (safe: a read
        may go to the primary needlessly, never see an older state)."""
        self._writers = {user: lsn for user, lsn in self._writers.items() if lsn > self._replayed}
        while len(self._writers) > self._max_writers // 2:
            oldest = next(iter(self._writers))
            self._floor = max(self._floor, self._writers.pop(oldest))

    def saw_replay(self, lsn: int) -> None:
        """The replica has replayed up to `lsn` (positions only grow: the furthest one counts)."""
        self._replayed = max(self._replayed, lsn)

    def needed(self, user_id: str | None) -> int:
        """How far the replica must have replayed to serve a read about `user_id` (None: the board)."""
        if user_id is None:
            return self._latest
        return max(self._floor, self._writers.get(user_id, 0))

    async def read(self, work: Callable[[asyncpg.Connection], Awaitable[T]], user_id: str | None) -> T:
        """`work` on the replica, or UseThePrimary. One attempt: a retry would cost more than the
        primary does."""
        pool, loop = self._pool, asyncio.get_running_loop()
        if pool is None or loop.time() < self._down_until:
            raise UseThePrimary()
        needed = self.needed(user_id)
        try:
            async with borrowed(pool, self._timeout) as conn:
                if needed <= self._replayed or await self._caught_up(conn, needed):
                    result = await work(conn)
                    self.served["replica"] += 1
                    return result
        except Exception as error:
            if not is_database_error(error):
                raise
            self._down_until = loop.time() + RETRY_REPLICA_SECONDS
            self.served["failed"] += 1
            log.warning("store.replica_unavailable", error=f"{type(error).__name__}: {error}")
            raise UseThePrimary() from error
        self.served["behind"] += 1
        raise UseThePrimary()

    async def _caught_up(self, conn: asyncpg.Connection, needed: int) -> bool:
        replayed: str | None = await conn.fetchval(_REPLAY_LSN)
        if replayed is None:  # not in recovery: the read URL names a primary, which is never behind
            return True
        self.saw_replay(parse_lsn(replayed))
        return needed <= self._replayed
