"""Plain values shared by every layer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Role(StrEnum):
    USER = "user"
    ADMIN = "admin"
    SERVICE = "service"


@dataclass(frozen=True, slots=True)
class User:
    user_id: str
    username: str
    display_name: str
    roles: tuple[Role, ...]


@dataclass(frozen=True, slots=True)
class Credentials:
    user: User
    password_hash: str
    banned: bool = False


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, as proven by a verified access token."""

    user_id: str
    roles: frozenset[str]
    token_id: str
    session_id: str
    expires_at: int
    csrf: str = ""
    # False for an identity of an external identity provider that is not a scoreboard user (a
    # trusted `service`): it may act for users but holds no tickets of its own.
    account: bool = True
    issued_at: int = 0  # `iat`: a ban refuses every token issued up to its moment

    def may_act_for(self, user_id: str) -> bool:
        return user_id == self.user_id or bool(self.roles & {Role.SERVICE, Role.ADMIN})


@dataclass(frozen=True, slots=True)
class Ticket:
    """An issued action: the right to earn `points` once, within a time window."""

    action_id: str
    user_id: str
    type: str
    points: int
    issued_at: datetime
    expires_at: datetime
    redeemed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ScoreEntry:
    """A user's standing: their score and when they reached it (the tie-break)."""

    user_id: str
    display_name: str
    score: int
    reached_at: datetime


ScoreRow = tuple[str, str, int, int]
"""One stored score as a cache rebuild streams it: (user_id, display_name, score, reached_at in
microseconds since 1970). A tuple, or a record that indexes and unpacks like one (the PostgreSQL
store hands out its driver's rows as they come): building a million ScoreEntry objects, their
datetimes or even copies of the rows costs seconds that a rebuild does not need to spend."""


@dataclass(frozen=True, slots=True)
class Redeemed:
    """A committed redemption: the user's new score and the event the outbox will replay."""

    entry: ScoreEntry
    points: int
    event_id: int


@dataclass(frozen=True, slots=True)
class RankedEntry:
    rank: int
    user_id: str
    display_name: str
    score: int


@dataclass(frozen=True, slots=True)
class Board:
    """The top of the leaderboard at one point in its history."""

    epoch: int
    seq: int
    entries: tuple[RankedEntry, ...]


class AdminAction(StrEnum):
    BAN = "ban"
    UNBAN = "unban"
    SCORE_CORRECTION = "score_correction"


@dataclass(frozen=True, slots=True)
class UserState:
    """What an admin act may change about a user: the audit log records it before and after."""

    score: int
    banned: bool


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One admin act: who did what to whom, why, when, and the user's state before and after."""

    audit_id: int
    actor_id: str
    action: AdminAction
    target_id: str
    reason: str
    before: UserState
    after: UserState
    at: datetime
