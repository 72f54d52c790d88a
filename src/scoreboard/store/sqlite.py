"""The SQLite Store: the embedded default. WAL mode; every write goes through group commit."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncGenerator, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

from scoreboard.domain.accounts import fold_username
from scoreboard.domain.actions import check_redeemable
from scoreboard.domain.errors import (
    ActionNotPermitted,
    DuplicateAction,
    StoreUnavailable,
    UsernameTaken,
)
from scoreboard.domain.model import Credentials, Redeemed, Role, ScoreEntry, ScoreRow, Ticket, User
from scoreboard.domain.ranking import to_micros
from scoreboard.domain.scoring import add_points
from scoreboard.store import migrate
from scoreboard.store.base import OutboxEvent, RedeemRequest, RefreshRecord
from scoreboard.store.sqlite_moderation import SqliteModeration, ticket_from_row
from scoreboard.store.sqlite_writer import SqliteWriter

T = TypeVar("T")


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _dt(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def _entry(row: sqlite3.Row) -> ScoreEntry:
    return ScoreEntry(row["user_id"], row["display_name"], row["score"], _dt(row["score_reached_at"]))


def path_from_url(url: str) -> Path:
    """`sqlite:///relative.db` or `sqlite:////absolute.db` → a filesystem path."""
    if not url.startswith("sqlite:///"):
        raise ValueError(f"not a sqlite URL: {url!r} (expected sqlite:///path/to/file.db)")
    return Path(url.removeprefix("sqlite:///"))


class SqliteStore(SqliteModeration):
    """Store adapter on one SQLite file: a writer thread (group commit) and a reader thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer = SqliteWriter(self._connect)
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="scoreboard-sqlite-reader")
        self._local = threading.local()

    @classmethod
    def from_url(cls, url: str) -> SqliteStore:
        return cls(path_from_url(url))

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=10000")
        return conn

    # lifecycle -------------------------------------------------------------------------------

    def migrate(self) -> list[str]:
        """Apply pending migrations; returns the names applied."""
        conn = self._connect()
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations"
                " (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)"
            )
            applied = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
            done = []
            for m in migrate.pending("sqlite", applied):
                _apply_migration(conn, m)
                done.append(f"{m.version:04d}_{m.name}")
            return done
        finally:
            conn.close()

    async def open(self) -> None:
        await asyncio.to_thread(self.migrate)
        self._writer.start()

    async def close(self) -> None:
        await asyncio.to_thread(self._writer.stop)
        self._reader.shutdown(wait=True)

    def observe_commits(self, observer: Callable[[int], None]) -> None:
        self._writer.on_commit = observer

    async def ping(self) -> None:
        await self._read(lambda c: c.execute("SELECT 1").fetchone())

    async def _read(self, job: Callable[[sqlite3.Connection], T]) -> T:
        def run() -> T:
            conn = getattr(self._local, "conn", None)
            if conn is None:
                conn = self._local.conn = self._connect()
            return job(conn)

        try:
            return await asyncio.get_running_loop().run_in_executor(self._reader, run)
        except sqlite3.Error as error:
            raise StoreUnavailable(f"the database could not be read: {error}") from error

    # accounts --------------------------------------------------------------------------------

    async def create_user(self, user: User, password_hash: str, now: datetime) -> None:
        at = to_micros(now)

        def insert(c: sqlite3.Connection) -> None:
            try:
                c.execute(
                    "INSERT INTO users (user_id, username, username_key, display_name, password_hash,"
                    " roles, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        user.user_id,
                        user.username,
                        fold_username(user.username),
                        user.display_name,
                        password_hash,
                        ",".join(user.roles),
                        at,
                        at,
                    ),
                )
            except sqlite3.IntegrityError:
                raise UsernameTaken(user.username) from None
            c.execute("INSERT INTO user_score VALUES (?, 0, ?, ?, ?)", (user.user_id, at, at, at))

        await self._writer.run(insert)

    async def credentials(self, username: str) -> Credentials | None:
        row = await self._read(
            lambda c: c.execute(
                "SELECT * FROM users WHERE username_key = ?", (fold_username(username),)
            ).fetchone()
        )
        if row is None:
            return None
        return Credentials(_user(row), row["password_hash"], banned=row["banned_at"] is not None)

    async def user(self, user_id: str) -> User | None:
        row = await self._read(
            lambda c: c.execute("SELECT * FROM users WHERE user_id = ?", (user_id,)).fetchone()
        )
        return None if row is None else _user(row)

    async def update_password_hash(self, user_id: str, password_hash: str) -> None:
        await self._writer.run(
            lambda c: c.execute(
                "UPDATE users SET password_hash = ? WHERE user_id = ?", (password_hash, user_id)
            )
        )

    async def save_refresh(self, record: RefreshRecord) -> None:
        await self._writer.run(
            lambda c: c.execute(
                "INSERT INTO refresh_tokens VALUES (?, ?, ?, ?, NULL, NULL)",
                (record.token_hash, record.family_id, record.user_id, to_micros(record.expires_at)),
            )
        )

    async def spend_refresh(self, token_hash: str, now: datetime) -> RefreshRecord | None:
        def spend(c: sqlite3.Connection) -> RefreshRecord | None:
            row = c.execute("SELECT * FROM refresh_tokens WHERE token_hash = ?", (token_hash,)).fetchone()
            if row is None:
                return None
            record = RefreshRecord(
                row["token_hash"],
                row["family_id"],
                row["user_id"],
                _dt(row["expires_at"]),
                spent=row["spent_at"] is not None,
                revoked=row["revoked_at"] is not None,
            )
            if record.spent:
                _revoke_family(c, record.family_id, now)
            else:
                c.execute(
                    "UPDATE refresh_tokens SET spent_at = ? WHERE token_hash = ?",
                    (to_micros(now), token_hash),
                )
            return record

        return await self._writer.run(spend)

    async def revoke_family(self, family_id: str) -> None:
        now = datetime.now(UTC)
        await self._writer.run(lambda c: _revoke_family(c, family_id, now))

    # ledger ----------------------------------------------------------------------------------

    async def save_ticket(self, ticket: Ticket) -> None:
        issued = to_micros(ticket.issued_at)
        await self._writer.run(
            lambda c: c.execute(
                "INSERT INTO action_log (action_id, user_id, type, points, issued_at, expires_at,"
                " redeemed_at, timestamp, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, NULL, ?, ?, ?)",
                (
                    ticket.action_id,
                    ticket.user_id,
                    ticket.type,
                    ticket.points,
                    issued,
                    to_micros(ticket.expires_at),
                    issued,
                    issued,
                    issued,
                ),
            )
        )

    async def redeem(self, request: RedeemRequest) -> Redeemed:
        return await self._writer.run(lambda c: _redeem(c, request))

    async def score_of(self, user_id: str) -> ScoreEntry | None:
        row = await self._read(
            lambda c: c.execute(
                "SELECT s.user_id, u.display_name, s.score, s.score_reached_at"
                " FROM user_score s JOIN users u USING (user_id)"
                " WHERE s.user_id = ? AND u.banned_at IS NULL",
                (user_id,),
            ).fetchone()
        )
        return None if row is None else _entry(row)

    async def top(self, limit: int) -> list[ScoreEntry]:
        return await self._read(lambda c: [_entry(r) for r in c.execute(_BOARD + " LIMIT ?", (limit,))])

    async def all_scores(self) -> list[ScoreEntry]:
        return await self._read(lambda c: [_entry(r) for r in c.execute(_BOARD)])

    async def score_rows(self) -> AsyncGenerator[list[ScoreRow], None]:
        # The embedded store is small: one read, handed out in chunks like the PostgreSQL stream.
        rows: list[ScoreRow] = await self._read(lambda c: [tuple(r) for r in c.execute(_SCORE_ROWS)])
        for start in range(0, len(rows), _ROWS_CHUNK):
            yield rows[start : start + _ROWS_CHUNK]

    async def rank_of(self, user_id: str) -> int | None:
        def rank(c: sqlite3.Connection) -> int | None:
            me = c.execute(
                "SELECT score, score_reached_at FROM user_score JOIN users USING (user_id)"
                " WHERE user_id = ? AND banned_at IS NULL",
                (user_id,),
            ).fetchone()
            if me is None or me["score"] == 0:
                return None
            ahead = c.execute(
                "SELECT count(*) FROM user_score JOIN users USING (user_id) WHERE banned_at IS NULL"
                " AND (score > ? OR (score = ?"
                " AND (score_reached_at < ? OR (score_reached_at = ? AND user_id < ?))))",
                (me["score"], me["score"], me["score_reached_at"], me["score_reached_at"], user_id),
            ).fetchone()[0]
            return int(ahead) + 1

        return await self._read(rank)

    # outbox ----------------------------------------------------------------------------------

    async def pending_events(self, older_than: datetime, limit: int) -> list[OutboxEvent]:
        rows = await self._read(
            lambda c: c.execute(
                "SELECT * FROM outbox WHERE published_at IS NULL AND created_at < ?"
                " ORDER BY event_id LIMIT ?",
                (to_micros(older_than), limit),
            ).fetchall()
        )
        return [
            OutboxEvent(
                r["event_id"],
                ScoreEntry(r["user_id"], r["display_name"], r["score"], _dt(r["reached_at"])),
                _dt(r["created_at"]),
            )
            for r in rows
        ]

    async def mark_published(self, event_ids: list[int]) -> None:
        if not event_ids:
            return
        now = to_micros(datetime.now(UTC))
        marks = [(now, event_id) for event_id in event_ids]
        await self._writer.run(
            lambda c: c.executemany(
                "UPDATE outbox SET published_at = ? WHERE event_id = ? AND published_at IS NULL",
                marks,
            )
        )


_ROWS_CHUNK = 20_000
_SCORE_ROWS = (
    "SELECT s.user_id, u.display_name, s.score, s.score_reached_at FROM user_score s"
    " JOIN users u USING (user_id) WHERE s.score > 0 AND u.banned_at IS NULL ORDER BY s.score DESC"
)
_BOARD = (
    "SELECT s.user_id, u.display_name, s.score, s.score_reached_at FROM user_score s"
    " JOIN users u USING (user_id) WHERE s.score > 0 AND u.banned_at IS NULL"
    " ORDER BY s.score DESC, s.score_reached_at ASC, s.user_id ASC"
)


def _apply_migration(conn: sqlite3.Connection, m: migrate.Migration) -> None:
    """One migration and its record in one transaction, statement by statement: `executescript`
    would commit first and takes no parameters, so the record would be spliced into SQL text."""
    conn.execute("BEGIN")
    try:
        for statement in migrate.statements(m.sql):
            conn.execute(statement)
        conn.execute(
            "INSERT INTO schema_migrations VALUES (?, ?, ?)",
            (m.version, m.name, to_micros(datetime.now(UTC))),
        )
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _user(row: sqlite3.Row) -> User:
    roles = tuple(Role(r) for r in row["roles"].split(",") if r)
    return User(row["user_id"], row["username"], row["display_name"], roles)


def _revoke_family(c: sqlite3.Connection, family_id: str, now: datetime) -> None:
    c.execute(
        "UPDATE refresh_tokens SET revoked_at = ? WHERE family_id = ? AND revoked_at IS NULL",
        (to_micros(now), family_id),
    )


def _current(c: sqlite3.Connection, user_id: str) -> sqlite3.Row:
    row = c.execute(
        "SELECT s.score, s.score_reached_at, u.display_name, u.banned_at FROM user_score s"
        " JOIN users u USING (user_id) WHERE s.user_id = ?",
        (user_id,),
    ).fetchone()
    if row is None:
        raise ActionNotPermitted("there is no such user")
    if row["banned_at"] is not None:
        raise ActionNotPermitted("this user is banned")
    found: sqlite3.Row = row
    return found


def _redeem(c: sqlite3.Connection, req: RedeemRequest) -> Redeemed:
    """The whole redemption, run inside the writer's savepoint: all of it or none of it."""
    current = _current(c, req.user_id)
    now = to_micros(req.now)
    if req.open_points is None:
        row = c.execute("SELECT * FROM action_log WHERE action_id = ?", (req.action_id,)).fetchone()
        ticket = None if row is None else ticket_from_row(row)
        min_seconds = req.min_seconds_by_type.get(ticket.type, 0) if ticket else 0
        points = check_redeemable(ticket, req.user_id, req.now, min_seconds, current["score"]).points
        claimed = c.execute(
            "UPDATE action_log SET redeemed_at = ?, updated_at = ? WHERE action_id = ?"
            " AND redeemed_at IS NULL",
            (now, now, req.action_id),
        ).rowcount
    else:
        points = req.open_points
        claimed = c.execute(
            "INSERT INTO action_log (action_id, user_id, type, points, issued_at, expires_at,"
            " redeemed_at, timestamp, created_at, updated_at)"
            " VALUES (?, ?, 'default', ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (action_id) DO NOTHING",
            (req.action_id, req.user_id, points, now, now, now, now, now, now),
        ).rowcount
    if claimed != 1:
        raise DuplicateAction(current["score"])
    score = add_points(current["score"], points)
    reached = max(now, current["score_reached_at"] + 1)
    c.execute(
        "UPDATE user_score SET score = ?, score_reached_at = ?, updated_at = ? WHERE user_id = ?",
        (score, reached, now, req.user_id),
    )
    event_id = c.execute(
        "INSERT INTO outbox (user_id, display_name, score, reached_at, created_at) VALUES (?, ?, ?, ?, ?)",
        (req.user_id, current["display_name"], score, reached, now),
    ).lastrowid
    entry = ScoreEntry(req.user_id, current["display_name"], score, _dt(reached))
    return Redeemed(entry=entry, points=points, event_id=int(event_id or 0))
