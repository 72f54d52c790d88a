"""The PostgreSQL Store's admin acts (bans, score corrections, the audit log): a mixin of
PostgresStore, with the row conversions both modules share.

Every act runs in the group-commit writer like any other write, in its own savepoint: the change,
its audit record and its outbox event commit together or not at all. An act first locks the user's
score row as redemption does, so it waits for a redemption in flight and sees its outbox event.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import asyncpg

from scoreboard.domain.errors import UserNotFound
from scoreboard.domain.model import AdminAction, AuditRecord, ScoreEntry, Ticket, UserState
from scoreboard.domain.moderation import ban_moment, restored_moment, state_dict, state_from
from scoreboard.store.base import AdminAct, Moderated
from scoreboard.store.postgres_writer import PostgresWriter

T = TypeVar("T")


class PostgresModeration:
    _writer: PostgresWriter

    if TYPE_CHECKING:

        async def _read(
            self, work: Callable[[asyncpg.Connection], Awaitable[T]], bulk: bool = False
        ) -> T: ...

    async def ban(self, act: AdminAct) -> Moderated:
        return await self._writer.run(lambda c: _ban(c, act))

    async def unban(self, act: AdminAct) -> Moderated:
        return await self._writer.run(lambda c: _unban(c, act))

    async def correct_score(self, act: AdminAct, score: int) -> Moderated:
        return await self._writer.run(lambda c: _correct(c, act, score))

    async def audit_log(self, limit: int) -> list[AuditRecord]:
        rows = await self._read(lambda c: c.fetch(_AUDIT_LOG, limit))
        return [_audit_record(r) for r in rows]

    async def recent_actions(self, user_id: str, limit: int) -> list[Ticket]:
        key = canonical(user_id)
        if key is None:
            return []
        rows = await self._read(lambda c: c.fetch(_RECENT_ACTIONS, key, limit))
        return [ticket_from_record(r) for r in rows]


def canonical(value: str) -> uuid.UUID | None:
    """The UUID written exactly as the API writes ids (lowercase, hyphenated), else None: another
    spelling of the same UUID must not find a row that SQLite, comparing text, would not find."""
    try:
        parsed = uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        return None
    return parsed if str(parsed) == value else None


def as_uuid(value: str, what: str) -> uuid.UUID:
    parsed = canonical(value)
    if parsed is None:
        raise ValueError(f"{what} must be a UUID in canonical lowercase form, got {value!r}")
    return parsed


def ticket_from_record(row: asyncpg.Record) -> Ticket:
    return Ticket(
        action_id=str(row["action_id"]),
        user_id=str(row["ticket_user_id"]),
        type=row["type"],
        points=row["points"],
        issued_at=row["issued_at"],
        expires_at=row["expires_at"],
        redeemed_at=row["redeemed_at"],
    )


async def _state(c: asyncpg.Connection, act: AdminAct) -> tuple[asyncpg.Record, UserState]:
    key = canonical(act.target_id)
    row = None if key is None else await c.fetchrow(_STATE, key)
    if row is None:
        raise UserNotFound(act.target_id)
    return row, UserState(row["score"], row["banned_at"] is not None)


async def _ban(c: asyncpg.Connection, act: AdminAct) -> Moderated:
    row, before = await _state(c, act)
    if before.banned:
        return Moderated(await _audit(c, act, AdminAction.BAN, before, before))
    moment = ban_moment(act.now, row["score_reached_at"])
    user_id = row["user_id"]
    await c.execute(_BAN, user_id, moment, act.now)
    entry = ScoreEntry(act.target_id, row["display_name"], 0, moment)
    after = UserState(before.score, banned=True)
    audit = await _audit(c, act, AdminAction.BAN, before, after)
    return Moderated(audit, entry, await _event(c, entry, act))


async def _unban(c: asyncpg.Connection, act: AdminAct) -> Moderated:
    row, before = await _state(c, act)
    if not before.banned:
        return Moderated(await _audit(c, act, AdminAction.UNBAN, before, before))
    await c.execute(
        "UPDATE users SET banned_at = NULL, updated_at = $2 WHERE user_id = $1", row["user_id"], act.now
    )
    entry = await _restore(c, act, row, before.score)
    audit = await _audit(c, act, AdminAction.UNBAN, before, UserState(before.score, banned=False))
    return Moderated(audit, entry, await _event(c, entry, act))


async def _correct(c: asyncpg.Connection, act: AdminAct, score: int) -> Moderated:
    row, before = await _state(c, act)
    entry = await _restore(c, act, row, score)
    audit = await _audit(c, act, AdminAction.SCORE_CORRECTION, before, UserState(score, before.banned))
    if before.banned:
        return Moderated(audit)  # off the board until unbanned
    return Moderated(audit, entry, await _event(c, entry, act))


async def _restore(c: asyncpg.Connection, act: AdminAct, row: asyncpg.Record, score: int) -> ScoreEntry:
    """Set the score, counted as reached now (see domain/moderation.py); the entry for the board."""
    reached = restored_moment(act.now, row["score_reached_at"], row["banned_at"])
    await c.execute(
        "UPDATE user_score SET score = $2, score_reached_at = $3, updated_at = $4 WHERE user_id = $1",
        row["user_id"],
        score,
        reached,
        act.now,
    )
    return ScoreEntry(act.target_id, row["display_name"], score, reached)


async def _event(c: asyncpg.Connection, entry: ScoreEntry, act: AdminAct) -> int:
    event_id: int = await c.fetchval(
        "INSERT INTO outbox (user_id, display_name, score, reached_at, created_at)"
        " VALUES ($1, $2, $3, $4, $5) RETURNING event_id",
        as_uuid(entry.user_id, "user_id"),
        entry.display_name,
        entry.score,
        entry.reached_at,
        act.now,
    )
    return event_id


async def _audit(
    c: asyncpg.Connection, act: AdminAct, action: AdminAction, before: UserState, after: UserState
) -> AuditRecord:
    audit_id: int = await c.fetchval(
        "INSERT INTO admin_audit (actor_id, action, target_id, reason, before, after, at)"
        " VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb, $7) RETURNING audit_id",
        as_uuid(act.actor_id, "actor_id"),
        str(action),
        as_uuid(act.target_id, "target_id"),
        act.reason,
        json.dumps(state_dict(before)),
        json.dumps(state_dict(after)),
        act.now,
    )
    return AuditRecord(audit_id, act.actor_id, action, act.target_id, act.reason, before, after, act.now)


def _audit_record(row: asyncpg.Record) -> AuditRecord:
    return AuditRecord(
        audit_id=row["audit_id"],
        actor_id=str(row["actor_id"]),
        action=AdminAction(row["action"]),
        target_id=str(row["target_id"]),
        reason=row["reason"],
        before=state_from(json.loads(row["before"])),
        after=state_from(json.loads(row["after"])),
        at=row["at"],
    )


# Locks the score row as redemption does (so an act waits for a redemption in flight and then sees
# its outbox event) and the user row (so two admin acts on one user are serialised).
_STATE = """
SELECT s.user_id, s.score, s.score_reached_at, u.display_name, u.banned_at
FROM user_score s JOIN users u USING (user_id)
WHERE s.user_id = $1
FOR NO KEY UPDATE OF s, u
"""

# $1 user, $2 the ban's moment, $3 now. Their refresh families end, and their committed but
# unapplied score events are dropped: a replay must not put them back on the board.
_BAN = """
WITH banned AS (
    UPDATE users SET banned_at = $2, updated_at = $3 WHERE user_id = $1 RETURNING user_id
),
families AS (
    UPDATE refresh_tokens SET revoked_at = $3 WHERE user_id = $1 AND revoked_at IS NULL
)
UPDATE outbox SET published_at = $3 WHERE user_id = $1 AND published_at IS NULL
"""

_AUDIT_LOG = """
SELECT audit_id, actor_id, action, target_id, reason, before::text, after::text, at
FROM admin_audit ORDER BY audit_id DESC LIMIT $1
"""

_RECENT_ACTIONS = """
SELECT action_id, user_id AS ticket_user_id, type, points, issued_at, expires_at, redeemed_at
FROM action_log WHERE user_id = $1 ORDER BY issued_at DESC, action_id LIMIT $2
"""
