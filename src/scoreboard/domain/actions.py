"""Action types and the rules deciding whether an action may be redeemed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from scoreboard.domain.errors import ActionNotPermitted, DuplicateAction, UnknownActionType
from scoreboard.domain.model import Ticket

DEFAULT_TYPE = "default"


class ActionPolicy(StrEnum):
    TICKETED = "ticketed"
    OPEN = "open"


@dataclass(frozen=True, slots=True)
class ActionType:
    name: str
    points: int = 1
    ttl_seconds: int = 600
    min_seconds: int = 0
    per_user_per_hour: int | None = None

    def __post_init__(self) -> None:
        for field in ("points", "ttl_seconds", "min_seconds", "per_user_per_hour"):
            value = getattr(self, field)
            # TOML gives floats and booleans too; a score must stay a 64-bit integer.
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                raise ValueError(f"action type {self.name!r}: {field} must be a whole number, got {value!r}")
        if self.points <= 0:
            raise ValueError(f"action type {self.name!r}: points must be > 0, got {self.points}")
        if self.ttl_seconds <= 0:
            raise ValueError(f"action type {self.name!r}: ttl_seconds must be > 0")
        if self.min_seconds < 0 or self.min_seconds >= self.ttl_seconds:
            raise ValueError(f"action type {self.name!r}: min_seconds must be in [0, ttl_seconds)")
        if self.per_user_per_hour is not None and self.per_user_per_hour <= 0:
            raise ValueError(f"action type {self.name!r}: per_user_per_hour must be > 0")


@dataclass(frozen=True, slots=True)
class ActionCatalog:
    types: dict[str, ActionType]

    @classmethod
    def default(cls) -> ActionCatalog:
        return cls({DEFAULT_TYPE: ActionType(DEFAULT_TYPE)})

    def get(self, name: str) -> ActionType:
        try:
            return self.types[name]
        except KeyError:
            raise UnknownActionType(name, list(self.types)) from None

    @property
    def open_policy_points(self) -> int:
        """What an action is worth under the open policy: the `default` type's points."""
        default = self.types.get(DEFAULT_TYPE)
        return default.points if default else 1


def issue_ticket(action_id: str, user_id: str, kind: ActionType, now: datetime) -> Ticket:
    return Ticket(
        action_id=action_id,
        user_id=user_id,
        type=kind.name,
        points=kind.points,
        issued_at=now,
        expires_at=now + timedelta(seconds=kind.ttl_seconds),
    )


def check_redeemable(
    ticket: Ticket | None, user_id: str, now: datetime, min_seconds: int, current_score: int
) -> Ticket:
    """The ticket if `user_id` may redeem it at `now`; otherwise why not.

    A ticket of another user is "not issued to you" even when already redeemed, so nobody learns
    about other users' actions. Only the owner is told it is a duplicate (with their score).
    """
    if ticket is None or ticket.user_id != user_id:
        raise ActionNotPermitted("this action was not issued to this user")
    if ticket.redeemed_at is not None:
        raise DuplicateAction(current_score)
    if now >= ticket.expires_at:
        raise ActionNotPermitted("this action has expired")
    if now < ticket.issued_at + timedelta(seconds=min_seconds):
        raise ActionNotPermitted(
            f"this action was completed too soon; its type needs {min_seconds}s after issue"
        )
    return ticket
