"""The PostgreSQL Store: the production truth, shared by every instance. Pooled asyncpg connections;
every write goes through group commit (store/postgres_writer.py).

The URL is handed to asyncpg untouched, so everything libpq-style in it works, TLS included:
`postgresql://user:pw@db.internal:5432/scoreboard?sslmode=require` encrypts the link,
`sslmode=verify-full&sslrootcert=/etc/ssl/db-ca.pem` also verifies the server's certificate and
name, `sslmode=disable` never uses TLS (asyncpg's default is `prefer`). `sslcert`/`sslkey` give a
client certificate.

Exactly-once across processes: redemption locks the user's score row, then ONE statement claims the
action (`UPDATE ... WHERE redeemed_at IS NULL`, or `INSERT ... ON CONFLICT DO NOTHING` under the open
policy), adds the points and appends the outbox event; a claim that finds the action already taken
changes nothing. Two instances redeeming one action at once are decided by that row, never twice.

With a read URL, the board, score and rank reads go to a streaming replica while every write (and
every read a write depends on) stays on the primary; store/postgres_replica.py keeps a lagging
replica from showing a writer anything older than their own commit.

Unreachable database: every call gives up within `budget_seconds` (retrying transient failures with
backoff meanwhile) and raises StoreUnavailable, with nothing applied.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TypeVar

import asyncpg

from scoreboard.domain.accounts import fold_username
from scoreboard.domain.actions import check_redeemable
from scoreboard.domain.errors import (
    ActionNotPermitted,
    DuplicateAction,
    ScoreOverflow,
    StoreUnavailable,
    UsernameTaken,
)
from scoreboard.domain.model import Credentials, Redeemed, Role, ScoreEntry, ScoreRow, Ticket, User
from scoreboard.domain.scoring import MAX_SCORE, add_points
from scoreboard.store import migrate
from scoreboard.store.base import OutboxEvent, RedeemRequest, RefreshRecord
from scoreboard.store.postgres_moderation import PostgresModeration
from scoreboard.store.postgres_moderation import as_uuid as _uuid
from scoreboard.store.postgres_moderation import canonical as _canonical
from scoreboard.store.postgres_moderation import ticket_from_record as _ticket
from scoreboard.store.postgres_replica import ReadReplica, UseThePrimary, parse_lsn
from scoreboard.store.postgres_writer import (
    PostgresWriter,
    borrowed,
    is_database_error,
    is_transient,
    retrying,
    unavailable,
)

T = TypeVar("T")


BUDGET_SECONDS = 4.0  # the longest any call waits for an unreachable database before StoreUnavailable
CONNECT_TIMEOUT_SECONDS = 2.0
BULK_SECONDS = 600.0  # a whole-table read (cache rebuild) in all; each of its round trips: the budget
SCAN_CHUNK = 20_000
FIRST_ROWS_SECONDS = 120.0  # score_rows' first round trip sorts every score (~3 s per million)
MIGRATION_LOCK = 0x5C0_4EB0A4D  # pg_advisory_lock key: one migrator per database at a time
MIGRATION_LOCK_TIMEOUT = 300.0  # how long a starting instance waits for another one's migration
# A session stuck mid-transaction (its client vanished) would hold row locks; the server ends it.
SESSION_SETTINGS = {"idle_in_transaction_session_timeout": "15s", "application_name": "scoreboard"}


class PostgresStore(PostgresModeration):
    """Store adapter on PostgreSQL: a connection pool for reads, one group-commit writer."""

    def __init__(
        self,
        url: str,
        budget_seconds: float = BUDGET_SECONDS,
        connect_timeout: float = CONNECT_TIMEOUT_SECONDS,
        pool_size: int = 10,
        read_url: str | None = None,
    ) -> None:
        if not url.startswith(("postgresql://", "postgres://")):
            raise ValueError(f"not a PostgreSQL URL: {url.split('@')[-1]!r} (expected postgresql://...)")
        self.url = url
        self._budget = budget_seconds
        self._connect_timeout = connect_timeout
        self._pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self._writer = PostgresWriter(budget_seconds)
        self.replica: ReadReplica | None = None
        if read_url is not None:
            self.replica = ReadReplica(read_url, connect_timeout, pool_size, self._settings())
            self._writer.track_lsn = True

    @classmethod
    def from_url(cls, url: str, read_url: str | None = None) -> PostgresStore:
        return cls(url, read_url=read_url)

    def _settings(self) -> dict[str, str]:
        return {k: v for k, v in SESSION_SETTINGS.items() if f"{k}=" not in self.url}

    # lifecycle -------------------------------------------------------------------------------

    def migrate(self) -> list[str]:
        """Apply pending migrations (blocking, on a private event loop); the names applied."""
        with ThreadPoolExecutor(1, thread_name_prefix="scoreboard-pg-migrate") as thread:
            return thread.submit(asyncio.run, self._migrate()).result()

    async def _migrate(self) -> list[str]:
        async def connect(within: float) -> asyncpg.Connection:
            within = min(within, self._connect_timeout)
            return await asyncpg.connect(self.url, timeout=within, server_settings=self._settings())

        conn = await retrying(connect, self._budget)
        try:
            return await _apply_migrations(conn)
        except Exception as error:
            if is_transient(error):
                raise unavailable(error) from error
            raise  # a migration that fails is a bug to see, not an outage
        finally:
            conn.terminate()

    async def open(self) -> None:
        await self._migrate()
        self._pool = await asyncpg.create_pool(
            self.url,
            min_size=0,
            max_size=self._pool_size,
            timeout=self._connect_timeout,
            command_timeout=self._budget,
            max_inactive_connection_lifetime=60.0,
            reset=_keep_session,
            server_settings=self._settings(),
        )
        self._writer.start(self._pool)
        if self.replica is not None:
            await self.replica.open()

    async def close(self) -> None:
        await self._writer.stop()
        if self.replica is not None:
            await self.replica.close()
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), self._connect_timeout)
            except TimeoutError:
                pool.terminate()

    def observe_commits(self, observer: Callable[[int], None]) -> None:
        self._writer.on_commit = observer

    async def ping(self) -> None:
        await self._read(lambda c: c.fetchval("SELECT 1"))

    async def _read(self, work: Callable[[asyncpg.Connection], Awaitable[T]], bulk: bool = False) -> T:
        """`work` on a pooled connection, retried on transient failures within the budget. A `bulk`
        read may run for up to BULK_SECONDS in all, as long as each round trip answers in time."""
        pool = self._pool
        if pool is None:
            raise StoreUnavailable("the PostgreSQL store is not open")

        async def attempt(within: float) -> T:
            async with borrowed(pool, BULK_SECONDS if bulk else within) as conn:
                return await work(conn)

        return await retrying(attempt, self._budget)

    async def _read_replica(
        self, work: Callable[[asyncpg.Connection], Awaitable[T]], user_id: str | None
    ) -> T:
        """A read the replica may serve: about `user_id`, or the board when None."""
        if self.replica is not None:
            with contextlib.suppress(UseThePrimary):
                return await self.replica.read(work, user_id)
        return await self._read(work)

    def _wrote(self, user_id: str) -> None:
        """`user_id`'s write just committed: their reads wait for the replica to replay it."""
        if self.replica is not None:
            self.replica.committed(user_id, parse_lsn(self._writer.commit_lsn))

    # accounts --------------------------------------------------------------------------------

    async def create_user(self, user: User, password_hash: str, now: datetime) -> None:
        args = (
            _uuid(user.user_id, "user_id"),
            user.username,
            fold_username(user.username),
            user.display_name,
            password_hash,
            [str(r) for r in user.roles],
            now,
        )

        async def insert(c: asyncpg.Connection) -> None:
            if await c.fetchval(_CREATE_USER, *args) is None:
                raise UsernameTaken(user.username)

        await self._writer.run(insert)
        self._wrote(user.user_id)

    async def credentials(self, username: str) -> Credentials | None:
        key = fold_username(username)
        row = await self._read(lambda c: c.fetchrow("SELECT * FROM users WHERE username_key = $1", key))
        if row is None:
            return None
        return Credentials(_user(row), row["password_hash"], banned=row["banned_at"] is not None)

    async def user(self, user_id: str) -> User | None:
        key = _canonical(user_id)
        if key is None:
            return None
        row = await self._read(lambda c: c.fetchrow("SELECT * FROM users WHERE user_id = $1", key))
        return None if row is None else _user(row)

    async def update_password_hash(self, user_id: str, password_hash: str) -> None:
        key = _uuid(user_id, "user_id")
        await self._writer.run(
            lambda c: c.execute("UPDATE users SET password_hash = $2 WHERE user_id = $1", key, password_hash)
        )

    async def save_refresh(self, record: RefreshRecord) -> None:
        args = (record.token_hash, record.family_id, _uuid(record.user_id, "user_id"), record.expires_at)
        await self._writer.run(
            lambda c: c.execute(
                "INSERT INTO refresh_tokens (token_hash, family_id, user_id, expires_at)"
                " VALUES ($1, $2, $3, $4)",
                *args,
            )
        )

    async def spend_refresh(self, token_hash: str, now: datetime) -> RefreshRecord | None:
        async def spend(c: asyncpg.Connection) -> RefreshRecord | None:
            # The row lock makes two instances spending one token at once see each other's spend.
            row = await c.fetchrow(
                "SELECT * FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE", token_hash
            )
            if row is None:
                return None
            record = RefreshRecord(
                row["token_hash"],
                row["family_id"],
                str(row["user_id"]),
                row["expires_at"],
                spent=row["spent_at"] is not None,
                revoked=row["revoked_at"] is not None,
            )
            if record.spent:
                await _revoke_family(c, record.family_id, now)
            else:
                await c.execute(
                    "UPDATE refresh_tokens SET spent_at = $2 WHERE token_hash = $1", token_hash, now
                )
            return record

        return await self._writer.run(spend)

    async def revoke_family(self, family_id: str) -> None:
        now = datetime.now(UTC)
        await self._writer.run(lambda c: _revoke_family(c, family_id, now))

    # ledger ----------------------------------------------------------------------------------

    async def save_ticket(self, ticket: Ticket) -> None:
        args = (
            _uuid(ticket.action_id, "action_id"),
            _uuid(ticket.user_id, "user_id"),
            ticket.type,
            ticket.points,
            ticket.issued_at,
            ticket.expires_at,
        )
        await self._writer.run(
            lambda c: c.execute(
                "INSERT INTO action_log (action_id, user_id, type, points, issued_at, expires_at,"
                " redeemed_at, timestamp, created_at, updated_at)"
                " VALUES ($1, $2, $3, $4, $5, $6, NULL, $5, $5, $5)",
                *args,
            )
        )

    async def redeem(self, request: RedeemRequest) -> Redeemed:
        redeemed = await self._writer.run(lambda c: _redeem(c, request), lock_key=request.user_id)
        self._wrote(request.user_id)
        return redeemed

    async def score_of(self, user_id: str) -> ScoreEntry | None:
        key = _canonical(user_id)
        if key is None:
            return None
        row = await self._read_replica(lambda c: c.fetchrow(_SCORE_OF, key), user_id)
        return None if row is None else _entry(row)

    async def top(self, limit: int) -> list[ScoreEntry]:
        rows = await self._read_replica(lambda c: c.fetch(_BOARD + " LIMIT $1", limit), None)
        return [_entry(r) for r in rows]

    async def all_scores(self) -> list[ScoreEntry]:
        async def scan(c: asyncpg.Connection) -> list[ScoreEntry]:
            # A cache rebuild may read millions of rows: in chunks, each answering within the budget.
            entries: list[ScoreEntry] = []
            async with c.transaction(readonly=True):
                cursor = await c.cursor(_BOARD)
                while rows := await cursor.fetch(SCAN_CHUNK):
                    entries += [_entry(r) for r in rows]
            return entries

        return await self._read(scan, bulk=True)

    async def score_rows(self) -> AsyncGenerator[list[ScoreRow], None]:
        # Grouped by score, highest first (see _SCORE_ROWS), times as microseconds, the cache's
        # unit, decoded as plain integers. The asyncpg records go out as they are (they index and
        # unpack like ScoreRow tuples): copying a million of them costs a second.
        pool = self._pool
        if pool is None:
            raise StoreUnavailable("the PostgreSQL store is not open")

        async def start(within: float) -> tuple[asyncpg.Connection, Any, Any]:
            conn = await pool.acquire(timeout=within)
            try:
                async with asyncio.timeout(within):
                    transaction = conn.transaction(readonly=True)
                    await transaction.start()
                    cursor = await conn.cursor(_SCORE_ROWS)
            except BaseException:
                with contextlib.suppress(asyncpg.InterfaceError):
                    conn.terminate()
                await pool.release(conn)
                raise
            return conn, transaction, cursor

        conn, transaction, cursor = await retrying(start, self._budget)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + BULK_SECONDS

        async def fetch(within: float) -> list[asyncpg.Record]:
            within = min(within, deadline - loop.time())
            if within <= 0:
                raise StoreUnavailable(f"reading every score took longer than {BULK_SECONDS:.0f}s")
            try:
                rows: list[asyncpg.Record] = await cursor.fetch(SCAN_CHUNK, timeout=within)
            except Exception as error:
                if is_database_error(error):
                    raise unavailable(error) from error
                raise
            return rows

        # The first round trip sorts the whole table (FIRST_ROWS_SECONDS); every later one answers
        # within the budget; the whole scan within BULK_SECONDS. The next chunk is asked for before
        # this one is handed out, so the database produces it while the caller works. A failure
        # part-way cannot be resumed (rows were handed out already): StoreUnavailable.
        ahead = asyncio.ensure_future(fetch(FIRST_ROWS_SECONDS))
        try:
            while rows := await ahead:
                ahead = asyncio.ensure_future(fetch(self._budget))
                yield rows
            await transaction.rollback()  # read only: nothing to keep
        except BaseException:
            ahead.cancel()
            with contextlib.suppress(BaseException):
                await ahead
            with contextlib.suppress(asyncpg.InterfaceError):
                conn.terminate()
            raise
        finally:
            await pool.release(conn)

    async def rank_of(self, user_id: str) -> int | None:
        key = _canonical(user_id)
        if key is None:
            return None
        rank: int | None = await self._read_replica(lambda c: c.fetchval(_RANK_OF, key), user_id)
        return rank

    # outbox ----------------------------------------------------------------------------------

    async def pending_events(self, older_than: datetime, limit: int) -> list[OutboxEvent]:
        rows = await self._read(
            lambda c: c.fetch(
                "SELECT * FROM outbox WHERE published_at IS NULL AND created_at < $1"
                " ORDER BY event_id LIMIT $2",
                older_than,
                limit,
            )
        )
        return [
            OutboxEvent(
                r["event_id"],
                ScoreEntry(str(r["user_id"]), r["display_name"], r["score"], r["reached_at"]),
                r["created_at"],
            )
            for r in rows
        ]

    async def mark_published(self, event_ids: list[int]) -> None:
        if not event_ids:
            return
        now = datetime.now(UTC)
        await self._writer.run(
            lambda c: c.execute(
                "UPDATE outbox SET published_at = $1 WHERE event_id = ANY($2::bigint[])"
                " AND published_at IS NULL",
                now,
                event_ids,
            )
        )


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Pool reset: nothing to undo (no SET, LISTEN or session locks are left behind), so returning a
    connection costs no round trip. An open transaction is still rolled back by asyncpg."""


async def _apply_migrations(conn: asyncpg.Connection) -> list[str]:
    """Pending migrations, each in its own transaction, under an advisory lock so two instances
    starting together do not race: the second waits, then finds nothing left to do."""
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK, timeout=MIGRATION_LOCK_TIMEOUT)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
            " name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        applied = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        done = []
        for m in migrate.pending("postgres", applied):
            async with conn.transaction():
                await conn.execute(m.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.version, m.name
                )
            done.append(f"{m.version:04d}_{m.name}")
        return done
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)


def _entry(row: asyncpg.Record) -> ScoreEntry:
    return ScoreEntry(str(row["user_id"]), row["display_name"], row["score"], row["score_reached_at"])


def _user(row: asyncpg.Record) -> User:
    roles = tuple(Role(r) for r in row["roles"])
    return User(str(row["user_id"]), row["username"], row["display_name"], roles)


async def _revoke_family(c: asyncpg.Connection, family_id: str, now: datetime) -> None:
    await c.execute(
        "UPDATE refresh_tokens SET revoked_at = $2 WHERE family_id = $1 AND revoked_at IS NULL",
        family_id,
        now,
    )


async def _redeem(c: asyncpg.Connection, req: RedeemRequest) -> Redeemed:
    """The whole redemption, inside the writer's savepoint: two round trips, all of it or none.

    1. Lock the user's score row and read it with the ticket (if any): the domain decides.
    2. One statement claims the action, adds the points and appends the outbox event; the claim
       finding the action already taken (by another instance, say) changes nothing."""
    user_id, action_id = _canonical(req.user_id), _canonical(req.action_id)
    row = None if user_id is None else await c.fetchrow(_CURRENT, user_id, action_id)
    if row is None:
        raise ActionNotPermitted("there is no such user")
    if row["banned_at"] is not None:
        raise ActionNotPermitted("this user is banned")
    if req.open_points is None:
        ticket = None if row["action_id"] is None else _ticket(row)
        min_seconds = req.min_seconds_by_type.get(ticket.type, 0) if ticket else 0
        points = check_redeemable(ticket, req.user_id, req.now, min_seconds, row["score"]).points
        statement = _CLAIM_TICKET
    elif action_id is None:
        raise ActionNotPermitted(
            f"action_id must be a UUID in canonical lowercase form, got {req.action_id!r}"
        )
    else:
        points, statement = req.open_points, _CLAIM_OPEN
    add_points(row["score"], points)  # refuses an overflow before anything is written
    applied = await c.fetchrow(statement, user_id, action_id, req.now, points, MAX_SCORE, row["display_name"])
    if not applied["claimed"]:
        raise DuplicateAction(row["score"])
    if applied["event_id"] is None:  # a guard in SQL refused: the savepoint undoes the claim
        if row["score"] > MAX_SCORE - points:
            raise ScoreOverflow(row["score"], points)
        # The ban guard: a ban committed while this redemption waited for the score row's lock
        # (its first read, from before the ban, could not see it).
        raise ActionNotPermitted("this user is banned")
    entry = ScoreEntry(req.user_id, row["display_name"], applied["score"], applied["reached_at"])
    return Redeemed(entry=entry, points=points, event_id=applied["event_id"])


_CREATE_USER = """
WITH created AS (
    INSERT INTO users (user_id, username, username_key, display_name, password_hash, roles,
                       created_at, updated_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
    ON CONFLICT DO NOTHING
    RETURNING user_id
)
INSERT INTO user_score (user_id, score, score_reached_at, created_at, updated_at)
SELECT user_id, 0, $7, $7, $7 FROM created
RETURNING user_id
"""

_SCORE_OF = """
SELECT s.user_id, u.display_name, s.score, s.score_reached_at
FROM user_score s JOIN users u USING (user_id) WHERE s.user_id = $1 AND u.banned_at IS NULL
"""

# Board order is the user_score_board index order: the top-N is an index scan that stops at N.
# Ids leave as text (cheaper to decode by the million) but sort as UUIDs (bytes: no collation).
# Grouped by score (ORDER BY the score alone, one sort of the join): equal scores arrive together,
# so the cache stores each tie group with one command. Nothing but that speed depends on the order.
_SCORE_ROWS = """
SELECT s.user_id::text, u.display_name, s.score,
       (extract(epoch FROM s.score_reached_at) * 1000000)::bigint
FROM user_score s JOIN users u USING (user_id) WHERE s.score > 0 AND u.banned_at IS NULL
ORDER BY s.score DESC
"""

_BOARD = """
SELECT s.user_id::text AS user_id, u.display_name, s.score, s.score_reached_at
FROM user_score s JOIN users u USING (user_id) WHERE s.score > 0 AND u.banned_at IS NULL
ORDER BY s.score DESC, s.score_reached_at ASC, s.user_id ASC
"""

# Two range scans of the board index, each as long as the rank, never the whole table; banned
# users (few) are looked up by key and left out.
_RANK_OF = """
SELECT 1
    + (SELECT count(*) FROM user_score o WHERE o.score > me.score AND NOT EXISTS _BANNED)
    + (SELECT count(*) FROM user_score o WHERE o.score = me.score
         AND (o.score_reached_at, o.user_id) < (me.score_reached_at, me.user_id) AND NOT EXISTS _BANNED)
FROM user_score me JOIN users mu USING (user_id)
WHERE me.user_id = $1 AND me.score > 0 AND mu.banned_at IS NULL
""".replace("_BANNED", "(SELECT FROM users b WHERE b.user_id = o.user_id AND b.banned_at IS NOT NULL)")

# NO KEY UPDATE: serialises redemptions of one user across instances (the score read is the latest
# committed one) without blocking inserts of tickets, whose foreign key only takes KEY SHARE.
_CURRENT = """
SELECT s.score, s.score_reached_at, u.display_name, u.banned_at,
       a.action_id, a.user_id AS ticket_user_id, a.type, a.points, a.issued_at, a.expires_at,
       a.redeemed_at
FROM user_score s JOIN users u USING (user_id)
LEFT JOIN action_log a ON a.action_id = $2
WHERE s.user_id = $1
FOR NO KEY UPDATE OF s
"""

# $1 user, $2 action, $3 now, $4 points, $5 the largest score, $6 display name. `claimed` counts
# the claim; a claimed action with no event means the overflow guard refused the score.
_APPLY = """
WITH claim AS ({claim}),
bump AS (
    UPDATE user_score s
    SET score = s.score + c.points,
        score_reached_at = GREATEST($3, s.score_reached_at + interval '1 microsecond'),
        updated_at = $3
    FROM claim c
    WHERE s.user_id = $1 AND s.score <= $5::bigint - c.points
      AND NOT EXISTS (SELECT FROM users u WHERE u.user_id = $1 AND u.banned_at IS NOT NULL)
    RETURNING s.score, s.score_reached_at
),
event AS (
    INSERT INTO outbox (user_id, display_name, score, reached_at, created_at)
    SELECT $1, $6, score, score_reached_at, $3 FROM bump
    RETURNING event_id, score, reached_at
)
SELECT (SELECT count(*) FROM claim) AS claimed, e.event_id, e.score, e.reached_at
FROM (VALUES (1)) AS one LEFT JOIN event e ON true
"""

_CLAIM_TICKET = _APPLY.format(
    claim="UPDATE action_log SET redeemed_at = $3, updated_at = $3"
    " WHERE action_id = $2 AND redeemed_at IS NULL AND points = $4 RETURNING points"
)

_CLAIM_OPEN = _APPLY.format(
    claim="INSERT INTO action_log (action_id, user_id, type, points, issued_at, expires_at,"
    " redeemed_at, timestamp, created_at, updated_at)"
    " VALUES ($2, $1, 'default', $4, $3, $3, $3, $3, $3, $3)"
    " ON CONFLICT (action_id) DO NOTHING RETURNING points"
)
