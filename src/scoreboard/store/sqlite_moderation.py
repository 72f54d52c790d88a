"""The SQLite Store's admin acts (bans, score corrections, the audit log): a mixin of SqliteStore.

Every act runs in the group-commit writer like any other write: one savepoint holds the change, its
audit record and its outbox event, so all of it commits or none of it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from scoreboard.domain.errors import UserNotFound
from scoreboard.domain.model import AdminAction, AuditRecord, ScoreEntry, Ticket, UserState
from scoreboard.domain.moderation import ban_moment, restored_moment, state_dict, state_from
from scoreboard.domain.ranking import from_micros, to_micros
from scoreboard.store.base import AdminAct, Moderated
from scoreboard.store.sqlite_writer import SqliteWriter

T = TypeVar("T")


class SqliteModeration:
    _writer: SqliteWriter

    if TYPE_CHECKING:

        async def _read(self, job: Callable[[sqlite3.Connection], T]) -> T: ...

    async def ban(self, act: AdminAct) -> Moderated:
        return await self._writer.run(lambda c: _ban(c, act))

    async def unban(self, act: AdminAct) -> Moderated:
        return await self._writer.run(lambda c: _unban(c, act))

    async def correct_score(self, act: AdminAct, score: int) -> Moderated:
        return await self._writer.run(lambda c: _correct(c, act, score))

    async def audit_log(self, limit: int) -> list[AuditRecord]:
        rows = await self._read(
            lambda c: c.execute(
                "SELECT * FROM admin_audit ORDER BY audit_id DESC LIMIT ?", (limit,)
            ).fetchall()
        )
        return [_audit_record(r) for r in rows]

    async def recent_actions(self, user_id: str, limit: int) -> list[Ticket]:
        rows = await self._read(
            lambda c: c.execute(
                "SELECT * FROM action_log WHERE user_id = ? ORDER BY issued_at DESC, action_id LIMIT ?",
                (user_id, limit),
            ).fetchall()
        )
        return [ticket_from_row(r) for r in rows]


def ticket_from_row(row: sqlite3.Row) -> Ticket:
    return Ticket(
        action_id=row["action_id"],
        user_id=row["user_id"],
        type=row["type"],
        points=row["points"],
        issued_at=from_micros(row["issued_at"]),
        expires_at=from_micros(row["expires_at"]),
        redeemed_at=None if row["redeemed_at"] is None else from_micros(row["redeemed_at"]),
    )


def _state(c: sqlite3.Connection, user_id: str) -> tuple[sqlite3.Row, UserState]:
    row = c.execute(
        "SELECT s.score, s.score_reached_at, u.display_name, u.banned_at FROM user_score s"
        " JOIN users u USING (user_id) WHERE s.user_id = ?",
        (user_id,),
    ).fetchone()
    if row is None:
        raise UserNotFound(user_id)
    return row, UserState(row["score"], row["banned_at"] is not None)


def _ban(c: sqlite3.Connection, act: AdminAct) -> Moderated:
    row, before = _state(c, act.target_id)
    if before.banned:
        return Moderated(_audit(c, act, AdminAction.BAN, before, before))
    now, user_id = to_micros(act.now), act.target_id
    moment = to_micros(ban_moment(act.now, from_micros(row["score_reached_at"])))
    c.execute("UPDATE users SET banned_at = ?, updated_at = ? WHERE user_id = ?", (moment, now, user_id))
    c.execute(
        "UPDATE refresh_tokens SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL", (now, user_id)
    )
    # Their committed but unapplied scores must not be replayed onto the board after the ban.
    c.execute("UPDATE outbox SET published_at = ? WHERE user_id = ? AND published_at IS NULL", (now, user_id))
    entry = ScoreEntry(user_id, row["display_name"], 0, from_micros(moment))
    after = UserState(before.score, banned=True)
    return Moderated(_audit(c, act, AdminAction.BAN, before, after), entry, _event(c, entry, now))


def _unban(c: sqlite3.Connection, act: AdminAct) -> Moderated:
    row, before = _state(c, act.target_id)
    if not before.banned:
        return Moderated(_audit(c, act, AdminAction.UNBAN, before, before))
    now = to_micros(act.now)
    c.execute("UPDATE users SET banned_at = NULL, updated_at = ? WHERE user_id = ?", (now, act.target_id))
    entry = _restore(c, act, row, before.score)
    after = UserState(before.score, banned=False)
    return Moderated(_audit(c, act, AdminAction.UNBAN, before, after), entry, _event(c, entry, now))


def _correct(c: sqlite3.Connection, act: AdminAct, score: int) -> Moderated:
    row, before = _state(c, act.target_id)
    entry = _restore(c, act, row, score)
    audit = _audit(c, act, AdminAction.SCORE_CORRECTION, before, UserState(score, before.banned))
    if before.banned:
        return Moderated(audit)  # off the board until unbanned
    return Moderated(audit, entry, _event(c, entry, to_micros(act.now)))


def _restore(c: sqlite3.Connection, act: AdminAct, row: sqlite3.Row, score: int) -> ScoreEntry:
    """Set the score, counted as reached now (see domain/moderation.py); the entry for the board."""
    banned = None if row["banned_at"] is None else from_micros(row["banned_at"])
    reached = restored_moment(act.now, from_micros(row["score_reached_at"]), banned)
    c.execute(
        "UPDATE user_score SET score = ?, score_reached_at = ?, updated_at = ? WHERE user_id = ?",
        (score, to_micros(reached), to_micros(act.now), act.target_id),
    )
    return ScoreEntry(act.target_id, row["display_name"], score, reached)


def _event(c: sqlite3.Connection, entry: ScoreEntry, now: int) -> int:
    cursor = c.execute(
        "INSERT INTO outbox (user_id, display_name, score, reached_at, created_at) VALUES (?, ?, ?, ?, ?)",
        (entry.user_id, entry.display_name, entry.score, to_micros(entry.reached_at), now),
    )
    return int(cursor.lastrowid or 0)


def _audit(
    c: sqlite3.Connection, act: AdminAct, action: AdminAction, before: UserState, after: UserState
) -> AuditRecord:
    at = to_micros(act.now)
    cursor = c.execute(
        "INSERT INTO admin_audit (actor_id, action, target_id, reason, before, after, at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            act.actor_id,
            str(action),
            act.target_id,
            act.reason,
            json.dumps(state_dict(before)),
            json.dumps(state_dict(after)),
            at,
        ),
    )
    audit_id = int(cursor.lastrowid or 0)
    return AuditRecord(
        audit_id, act.actor_id, action, act.target_id, act.reason, before, after, from_micros(at)
    )


def _audit_record(row: sqlite3.Row) -> AuditRecord:
    return AuditRecord(
        audit_id=row["audit_id"],
        actor_id=row["actor_id"],
        action=AdminAction(row["action"]),
        target_id=row["target_id"],
        reason=row["reason"],
        before=state_from(json.loads(row["before"])),
        after=state_from(json.loads(row["after"])),
        at=from_micros(row["at"]),
    )
