"""The Store: the durable truth about users, tickets, scores and the outbox.

Adapters: `sqlite` (the embedded default) and `postgres`. Every adapter passes the same contract
suite (tests/contract/test_store.py).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from scoreboard.domain.model import (
    AuditRecord,
    Credentials,
    Redeemed,
    ScoreEntry,
    ScoreRow,
    Ticket,
    User,
)


@dataclass(frozen=True, slots=True)
class RefreshRecord:
    token_hash: str
    family_id: str
    user_id: str
    expires_at: datetime
    spent: bool
    revoked: bool


@dataclass(frozen=True, slots=True)
class RedeemRequest:
    """One redemption to decide: under the open policy `open_points` is set and no ticket is needed."""

    user_id: str
    action_id: str
    now: datetime
    min_seconds_by_type: dict[str, int]
    open_points: int | None = None


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    event_id: int
    entry: ScoreEntry
    created_at: datetime


class Accounts(Protocol):
    """Users, their credentials and their refresh-token families."""

    async def create_user(self, user: User, password_hash: str, now: datetime) -> None:
        """Insert a user and their zero score. Raises UsernameTaken when the name's folded form
        (case and unicode normalisation) is already used."""

    async def credentials(self, username: str) -> Credentials | None:
        """The user and password hash for a username (matched on its folded form)."""

    async def user(self, user_id: str) -> User | None:
        """The user with this id, or None."""

    async def update_password_hash(self, user_id: str, password_hash: str) -> None:
        """Replace a password hash (rehash on login when the hashing cost changed)."""

    async def save_refresh(self, record: RefreshRecord) -> None:
        """Store a new, unspent refresh token of a family."""

    async def spend_refresh(self, token_hash: str, now: datetime) -> RefreshRecord | None:
        """Atomically mark a refresh token spent and return it as it was before. Spending an already
        spent token revokes its whole family (reuse detection) and returns it with `spent=True`."""

    async def revoke_family(self, family_id: str) -> None:
        """Revoke every refresh token of a family (logout)."""


class Ledger(Protocol):
    """Tickets, scores and the outbox. Redemption is exactly-once: the action's unique key decides."""

    async def save_ticket(self, ticket: Ticket) -> None:
        """Record an issued, unredeemed ticket."""

    async def redeem(self, request: RedeemRequest) -> Redeemed:
        """In ONE transaction: mark the action processed, add its points, append an outbox event.

        Raises DuplicateAction (with the current score) when the action was processed already,
        ActionNotPermitted when the ticket is not this user's / expired / too soon / the user is
        unknown, ScoreOverflow, or StoreUnavailable with nothing applied. Only success uses up the ticket."""

    async def score_of(self, user_id: str) -> ScoreEntry | None:
        """A user's score and when it was reached; None for an unknown user."""

    async def top(self, limit: int) -> list[ScoreEntry]:
        """The best `limit` users with a positive score, in board order (used to build caches)."""

    async def all_scores(self) -> list[ScoreEntry]:
        """Every positive score, in board order, all at once (checks and tools)."""

    def score_rows(self) -> AsyncGenerator[Sequence[ScoreRow], None]:
        """Every positive score, streamed a bounded chunk of rows at a time: what a leaderboard cache
        rebuild loads, without holding a million users in memory at once. Grouped by score,
        highest first (equal scores arrive together, so a cache can store each tie group with one
        command; no order within a score). A failure part-way raises StoreUnavailable; the caller
        starts over."""

    async def rank_of(self, user_id: str) -> int | None:
        """The user's 1-based rank in board order, None when their score is 0 or they are unknown."""


class Outbox(Protocol):
    """Committed score events waiting to be applied to the cache and broker (at-least-once)."""

    async def pending_events(self, older_than: datetime, limit: int) -> list[OutboxEvent]:
        """Unpublished events committed before `older_than`, oldest first."""

    async def mark_published(self, event_ids: list[int]) -> None:
        """Mark events applied; idempotent."""


@dataclass(frozen=True, slots=True)
class AdminAct:
    """Who acts on which user, why and when."""

    actor_id: str
    target_id: str
    reason: str
    now: datetime


@dataclass(frozen=True, slots=True)
class Moderated:
    """A committed admin act: its audit record, and the board entry to apply (with its outbox event)
    when the act changed what the board shows; a score of 0 removes the user from the board."""

    audit: AuditRecord
    entry: ScoreEntry | None = None
    event_id: int | None = None


class Moderation(Protocol):
    """Admin acts. Each one is ONE transaction: the change, its audit record and (when the board
    must change) an outbox event, so the cache catches up even if applying it fails. Banned users
    stay stored (their score is the truth) but every board query (`top`, `all_scores`,
    `score_rows`, `rank_of`, `score_of`) leaves them out, so a rebuilt cache does too; they
    cannot redeem actions (ActionNotPermitted) and `credentials` says they are banned. Unknown
    users raise UserNotFound."""

    async def ban(self, act: AdminAct) -> Moderated:
        """Ban the user: revoke their refresh families, drop their unpublished score events (a
        replay must not put them back) and append an event removing them from the board. Banning
        a banned user changes nothing but is still audited."""

    async def unban(self, act: AdminAct) -> Moderated:
        """Lift a ban; the user's stored score returns to the board, counted as reached now."""

    async def correct_score(self, act: AdminAct, score: int) -> Moderated:
        """Set the user's score (0 to MAX_SCORE); it counts as reached now (domain/moderation.py).
        A banned user's score changes in the Store only."""

    async def audit_log(self, limit: int) -> list[AuditRecord]:
        """The newest `limit` admin acts, newest first."""

    async def recent_actions(self, user_id: str, limit: int) -> list[Ticket]:
        """The user's newest `limit` actions (tickets, redeemed or not), newest issue first."""


class Store(Accounts, Ledger, Outbox, Moderation, Protocol):
    """The whole truth, as one adapter implements it."""

    def migrate(self) -> list[str]:
        """Apply pending schema migrations (blocking); the names applied."""

    async def open(self) -> None:
        """Apply migrations and start serving."""

    def observe_commits(self, observer: Callable[[int], None]) -> None:
        """Call `observer` after every commit with the number of writes it carried (group commit)."""

    async def ping(self) -> None:
        """Raise StoreUnavailable when the database does not answer."""

    async def close(self) -> None:
        """Finish pending work and release connections."""
