"""Group commit for SQLite: one writer thread runs every write queued at a moment in ONE transaction.

Each write runs inside its own SAVEPOINT, so a refused write (a duplicate, a forbidden action) rolls
back alone while its neighbours commit together. A caller's future resolves only after the COMMIT
that made its write durable; if the COMMIT fails, every write of the batch fails with it and
nothing of the batch is applied.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections import defaultdict
from collections.abc import Callable
from typing import Any, TypeVar

from scoreboard.domain.errors import StoreUnavailable

T = TypeVar("T")
MAX_BATCH = 512

_Job = tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any], asyncio.AbstractEventLoop]
_Outcome = tuple[asyncio.Future[Any], Any, BaseException | None]


class SqliteWriter:
    """Serialises writes on one connection, committing them in batches."""

    def __init__(self, connect: Callable[[], sqlite3.Connection]) -> None:
        self._connect = connect
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="scoreboard-sqlite-writer", daemon=True)
        self.batches = 0
        self.writes = 0
        self.on_commit: Callable[[int], None] = _ignore

    def start(self) -> None:
        self._thread.start()
        self._ready.wait()
        if self._startup_error is not None:
            raise self._startup_error

    async def run(self, job: Callable[[sqlite3.Connection], T]) -> T:
        """Run `job(conn)` in the next batch; returns once that batch has committed."""
        if not self._thread.is_alive():
            raise StoreUnavailable("the database writer is not running")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put((job, future, loop))
        return await future

    def stop(self) -> None:
        if self._thread.is_alive():
            self._jobs.put(None)
            self._thread.join()

    def _run(self) -> None:
        try:
            conn = self._connect()
        except BaseException as error:
            self._startup_error = error
            self._ready.set()
            return
        self._ready.set()
        try:
            while (batch := self._next_batch()) is not None:
                self._execute(conn, batch)
        finally:
            conn.close()

    def _next_batch(self) -> list[_Job] | None:
        first = self._jobs.get()
        if first is None:
            return None
        batch = [first]
        while len(batch) < MAX_BATCH:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is None:
                self._jobs.put(None)  # finish this batch, then stop
                break
            batch.append(job)
        return batch

    def _execute(self, conn: sqlite3.Connection, batch: list[_Job]) -> None:
        try:
            conn.execute("BEGIN IMMEDIATE")
            outcomes = [_run_in_savepoint(conn, job) for job in batch]
            conn.execute("COMMIT")
            self.on_commit(len(batch))
        except sqlite3.Error as error:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            failure = StoreUnavailable(f"the database refused the transaction: {error}")
            outcomes = [(future, None, failure) for _, future, _ in batch]
        self.batches += 1
        self.writes += len(batch)
        _settle(batch, outcomes)


def _ignore(_: int) -> None:
    return None


def _run_in_savepoint(conn: sqlite3.Connection, job: _Job) -> _Outcome:
    run, future, _ = job
    conn.execute("SAVEPOINT op")
    try:
        result = run(conn)
    except sqlite3.OperationalError:
        raise  # the database itself failed: the whole batch fails
    except Exception as error:
        conn.execute("ROLLBACK TO op")
        conn.execute("RELEASE op")
        return (future, None, error)
    conn.execute("RELEASE op")
    return (future, result, None)


def _settle(batch: list[_Job], outcomes: list[_Outcome]) -> None:
    """Hand results back to each caller's event loop, one wake-up per loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[_Outcome]] = defaultdict(list)
    for (_, _, loop), outcome in zip(batch, outcomes, strict=True):
        by_loop[loop].append(outcome)
    for loop, items in by_loop.items():
        if not loop.is_closed():
            loop.call_soon_threadsafe(_settle_in_loop, items)


def _settle_in_loop(outcomes: list[_Outcome]) -> None:
    for future, result, error in outcomes:
        if future.done():
            continue
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)
