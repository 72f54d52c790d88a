"""Group commit for PostgreSQL, and the retry policy every PostgreSQL call shares.

One writer coroutine takes every write queued at a moment and runs them in ONE transaction, each
inside its own SAVEPOINT, so a refused write (a duplicate, a forbidden action) rolls back alone while
its neighbours commit together. A caller's future resolves only after the COMMIT that made its write
durable; if the batch cannot commit, every write of it fails and nothing of it is applied.

Transient failures (a dropped or terminated connection, a deadlock, a serialization failure, a
timeout) roll the whole batch back and run it again after a bounded exponential backoff; nothing
was committed, so re-running is safe. A write that cannot commit before its deadline fails with
StoreUnavailable. When the connection drops during COMMIT itself the outcome is unknown to us but
not to the server: the batch's transaction id is looked up with `txid_status`, so a committed batch
still answers its callers and an aborted one is retried. Only when even that cannot be learnt does
the batch fail as StoreUnavailable ("outcome unknown"); a client retrying the same action_id then
gets a duplicate if it had been applied, so nothing is ever applied twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg

from scoreboard.domain.errors import StoreUnavailable

T = TypeVar("T")
Work = Callable[[asyncpg.Connection], Awaitable[Any]]

# Every write that changes rows gets a subtransaction id; PostgreSQL caches 64 per backend before
# other sessions' snapshots must consult pg_subtrans, so a batch stays within that.
MAX_BATCH = 64
FIRST_BACKOFF = 0.02
MAX_BACKOFF = 0.5
MIN_ATTEMPT_SECONDS = 0.25

# Past every commit record written so far: a replica that replayed this far sees those commits.
_INSERT_LSN = "SELECT pg_current_wal_insert_lsn()::text"
_STATUS_AND_LSN = "SELECT txid_status($1), pg_current_wal_insert_lsn()::text"

_CONNECTION_LOST = (
    asyncpg.PostgresConnectionError,  # 08*: connection does not exist / failure / rejected
    asyncpg.OperatorInterventionError,  # 57*: admin shutdown (pg_terminate_backend), crash, canceled
    asyncpg.InsufficientResourcesError,  # 53*: too many connections, out of memory, disk full
    OSError,  # refused, reset, unreachable, TLS failures; also TimeoutError
)


def is_transient(error: BaseException) -> bool:
    """Whether trying again later may succeed: connection trouble, lock conflicts, timeouts."""
    if isinstance(error, asyncpg.TransactionRollbackError | asyncpg.LockNotAvailableError):
        return True  # 40001 serialization failure, 40P01 deadlock, 55P03 lock timeout
    if isinstance(error, asyncpg.InternalClientError):
        return True  # a connection the server dropped while idle, caught mid-way: use another one
    if isinstance(error, asyncpg.InterfaceError):
        # "connection is closed", "another operation is in progress"; but a bad argument (DataError,
        # a ValueError too) is our mistake and would fail again.
        return not isinstance(error, ValueError)
    return isinstance(error, _CONNECTION_LOST)


def is_database_error(error: BaseException) -> bool:
    return isinstance(
        error, asyncpg.PostgresError | asyncpg.InterfaceError | asyncpg.InternalClientError | OSError
    )


def unavailable(error: BaseException) -> StoreUnavailable:
    return StoreUnavailable(f"the database is unavailable ({type(error).__name__}: {error})")


class Backoff:
    """Exponential backoff with jitter, bounded by a deadline on the event loop's clock."""

    def __init__(self, budget: float) -> None:
        self.deadline = asyncio.get_running_loop().time() + budget
        self._delay = FIRST_BACKOFF

    def remaining(self) -> float:
        return max(self.deadline - asyncio.get_running_loop().time(), MIN_ATTEMPT_SECONDS)

    async def wait(self) -> bool:
        """Sleep before the next attempt; False (without sleeping) when no attempt would fit."""
        delay = self._delay * random.uniform(0.5, 1.0)
        if asyncio.get_running_loop().time() + delay >= self.deadline:
            return False
        await asyncio.sleep(delay)
        self._delay = min(self._delay * 2, MAX_BACKOFF)
        return True


async def retrying(attempt: Callable[[float], Awaitable[T]], budget: float) -> T:
    """`attempt(seconds_left)` until it succeeds, a non-transient error, or `budget` seconds have passed.

    Database errors come out as StoreUnavailable; anything else (a domain refusal) as it is."""
    backoff = Backoff(budget)
    while True:
        try:
            return await attempt(backoff.remaining())
        except Exception as error:
            if not is_database_error(error):
                raise
            if not is_transient(error) or not await backoff.wait():
                raise unavailable(error) from error


@asynccontextmanager
async def borrowed(pool: asyncpg.Pool, within: float) -> AsyncIterator[asyncpg.Connection]:
    """A pooled connection for at most `within` seconds. On any failure the connection is
    terminated rather than reset: its state is unknown, and a polite reset could wait forever on a
    server that no longer answers."""
    conn = await pool.acquire(timeout=within)
    try:
        async with asyncio.timeout(within):
            yield conn
    except BaseException:
        with contextlib.suppress(asyncpg.InterfaceError):  # already gone, and handed back by asyncpg
            conn.terminate()
        raise
    finally:
        await pool.release(conn)


@dataclass(eq=False)
class _Job:
    work: Work
    future: asyncio.Future[Any]
    deadline: float
    lock_key: str = ""


_Outcome = tuple[_Job, Any, BaseException | None]


class _Retry(Exception):
    """The batch attempt failed transiently and nothing of it was committed."""


class PostgresWriter:
    """Runs writes on one connection at a time, committing them in batches."""

    def __init__(self, budget: float, max_batch: int = MAX_BATCH) -> None:
        self._budget = budget
        self._max_batch = max_batch
        self._pool: asyncpg.Pool | None = None
        self._jobs: asyncio.Queue[_Job | None] | None = None
        self._task: asyncio.Task[None] | None = None
        self.batches = 0  # committed batches
        self.on_commit: Callable[[int], None] = lambda _: None
        self.writes = 0  # writes decided by a committed batch (applied or refused)
        self.retries = 0  # batch attempts rolled back by a transient failure and run again
        self.outcomes_learnt = 0  # COMMITs whose answer was lost, settled by asking the server
        self.unknown_outcomes = 0  # batches whose COMMIT outcome could not be learnt
        # With a read replica: the WAL position past the latest committed batch (read-your-writes).
        self.track_lsn = False
        self.commit_lsn = "0/0"

    def start(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        jobs: asyncio.Queue[_Job | None] = asyncio.Queue()  # bound to the loop that opened the store
        self._jobs = jobs
        self._task = asyncio.get_running_loop().create_task(self._run(jobs), name="scoreboard-pg-writer")

    async def run(self, work: Callable[[asyncpg.Connection], Awaitable[T]], lock_key: str = "") -> T:
        """Run `work(conn)` in the next batch; returns once that batch has committed.

        `lock_key` names the row `work` locks (a user id). A batch runs its writes in key order
        (arrival order within a key), so batches of several instances — each holding its locks
        until its one COMMIT — take shared rows in the same order and cannot deadlock."""
        jobs, task = self._jobs, self._task
        if jobs is None or task is None or task.done():
            raise StoreUnavailable("the database writer is not running")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        jobs.put_nowait(_Job(work, future, loop.time() + self._budget, lock_key))
        return await future

    async def stop(self) -> None:
        """Finish the writes already queued, then stop."""
        if self._jobs is not None and self._task is not None and not self._task.done():
            self._jobs.put_nowait(None)
            await self._task

    async def _run(self, jobs: asyncio.Queue[_Job | None]) -> None:
        while (batch := await self._next_batch(jobs)) is not None:
            try:
                await self._execute(batch)
            except Exception as error:  # a bug must not strand the callers of this batch
                _fail(batch, error)

    async def _next_batch(self, jobs: asyncio.Queue[_Job | None]) -> list[_Job] | None:
        first = await jobs.get()
        if first is None:
            return None
        batch = [first]
        while len(batch) < self._max_batch and not jobs.empty():
            job = jobs.get_nowait()
            if job is None:
                jobs.put_nowait(None)  # finish this batch, then stop
                break
            batch.append(job)
        batch.sort(key=lambda job: job.lock_key)  # stable: one key's writes keep their order
        return batch

    async def _execute(self, batch: list[_Job]) -> None:
        jobs = [job for job in batch if not job.future.done()]  # a cancelled caller waits for nothing
        delay = FIRST_BACKOFF
        loop = asyncio.get_running_loop()
        while jobs:
            try:
                outcomes = await self._attempt(jobs)
            except _Retry as retry:
                self.retries += 1
                retry_at = loop.time() + delay
                _fail([j for j in jobs if j.deadline <= retry_at], unavailable(retry.__cause__ or retry))
                jobs = [j for j in jobs if j.deadline > retry_at]
                if jobs:
                    await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                    delay = min(delay * 2, MAX_BACKOFF)
                continue
            except StoreUnavailable as error:
                _fail(jobs, error)
                return
            self.batches += 1
            self.writes += len(jobs)
            self.on_commit(len(jobs))
            _settle(outcomes)
            return

    async def _attempt(self, jobs: list[_Job]) -> list[_Outcome]:
        """One transaction over `jobs`. Raises _Retry when it surely did not commit and may be run
        again, StoreUnavailable when it cannot be."""
        assert self._pool is not None
        deadline = min(j.deadline for j in jobs)
        timeout = max(deadline - asyncio.get_running_loop().time(), MIN_ATTEMPT_SECONDS)
        xid: int | None = None
        committing = False
        try:
            async with borrowed(self._pool, timeout) as conn:
                outcomes = await _run_jobs(conn, jobs)
                xid = await conn.fetchval("SELECT txid_current_if_assigned()")
                committing = True
                await conn.execute("COMMIT")
                if self.track_lsn and xid is not None:
                    self.commit_lsn = await conn.fetchval(_INSERT_LSN)
            return outcomes
        except Exception as error:
            if committing and xid is not None:
                await self._learn_outcome(xid, deadline, error)
                return outcomes  # it did commit
            if is_transient(error):
                raise _Retry from error
            if is_database_error(error):
                raise unavailable(error) from error
            raise

    async def _learn_outcome(self, xid: int, deadline: float, error: Exception) -> None:
        """Return if transaction `xid` committed; raise _Retry if it did not, StoreUnavailable if
        that cannot be learnt in time."""
        assert self._pool is not None
        loop = asyncio.get_running_loop()
        backoff = Backoff(max(deadline - loop.time(), 1.0))
        found: str | None = None
        lsn = self.commit_lsn
        while True:
            try:
                async with borrowed(self._pool, backoff.remaining()) as conn:
                    found, lsn = await conn.fetchrow(_STATUS_AND_LSN, xid)
            except Exception as lookup:
                found = None
                if not is_transient(lookup):
                    break
            else:
                if found != "in progress":  # still in progress: the old backend has not ended yet
                    break
            if not await backoff.wait():
                found = None
                break
        if found in ("committed", "aborted"):
            self.outcomes_learnt += 1
        if found == "committed":
            self.commit_lsn = lsn
            return
        if found == "aborted":
            raise _Retry from error
        self.unknown_outcomes += 1
        raise StoreUnavailable(
            "the database connection was lost while committing and the outcome is unknown;"
            " retrying is safe: an action already applied answers as a duplicate"
        ) from error


async def _run_jobs(conn: asyncpg.Connection, jobs: list[_Job]) -> list[_Outcome]:
    # READ COMMITTED whatever the server default: redemption relies on row locks re-reading the
    # latest committed version rather than on failing with serialization errors.
    await conn.execute("BEGIN ISOLATION LEVEL READ COMMITTED; SAVEPOINT job")
    last = len(jobs) - 1
    return [await _in_savepoint(conn, job, more=index < last) for index, job in enumerate(jobs)]


async def _in_savepoint(conn: asyncpg.Connection, job: _Job, more: bool) -> _Outcome:
    """Run one write inside the open savepoint `job`; leave a fresh savepoint for the next one."""
    try:
        result = await job.work(conn)
    except Exception as error:
        if is_transient(error):
            raise  # the transaction itself is lost: the whole batch runs again
        await conn.execute("ROLLBACK TO SAVEPOINT job")  # the savepoint stays, ready for the next
        return (job, None, error)
    if more:
        await conn.execute("RELEASE SAVEPOINT job; SAVEPOINT job")
    return (job, result, None)


def _settle(outcomes: list[_Outcome]) -> None:
    for job, result, error in outcomes:
        if job.future.done():
            continue
        if error is None:
            job.future.set_result(result)
        else:
            job.future.set_exception(error)


def _fail(jobs: list[_Job], error: BaseException) -> None:
    for job in jobs:
        if not job.future.done():
            job.future.set_exception(error)
