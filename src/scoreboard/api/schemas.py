"""Wire shapes of request and response bodies (msgspec), also the source of the OpenAPI schemas."""

from __future__ import annotations

from typing import Annotated

import msgspec

from scoreboard.api.bodies import Uuid

# The policy (3-32 of [A-Za-z0-9_.-]) is checked after NFKC normalisation, in the domain: a
# fullwidth spelling of a taken name must be refused as taken (409), not as malformed.
Username = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=128,
        description="3-32 of `[A-Za-z0-9_.-]` after NFKC normalisation; unique regardless of case and width.",
    ),
]
Password = Annotated[str, msgspec.Meta(min_length=10, max_length=1024)]
DisplayName = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
ActionTypeName = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class Strict(msgspec.Struct, forbid_unknown_fields=True):
    """Request bodies: unknown fields are refused."""


class RegisterRequest(Strict):
    username: Username
    password: Password
    display_name: DisplayName | None = None


class LoginRequest(Strict):
    username: Annotated[str, msgspec.Meta(max_length=256)]
    password: Annotated[str, msgspec.Meta(max_length=1024)]


class RefreshRequest(Strict):
    refresh_token: Annotated[str, msgspec.Meta(min_length=1, max_length=512)]


class ActionRequest(Strict):
    type: ActionTypeName


class ScoreUpdateRequest(Strict):
    user_id: Uuid
    action_id: Uuid


Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]


class AdminReasonRequest(Strict):
    reason: Reason


class ScoreCorrectionRequest(Strict):
    score: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
    reason: Reason


class UserOut(msgspec.Struct):
    user_id: str
    username: str
    display_name: str


class TokenPairOut(msgspec.Struct):
    access_token: str
    token_type: str
    expires_in: int
    refresh_token: str
    csrf_token: str


class TicketOut(msgspec.Struct):
    action_id: str
    type: str
    points: int
    issued_at: str
    expires_at: str


class ScoreUpdatedOut(msgspec.Struct):
    message: str
    new_score: int
    rank: int | None


class EntryOut(msgspec.Struct):
    rank: int
    user_id: str
    display_name: str
    score: int


class LeaderboardOut(msgspec.Struct):
    epoch: int
    seq: int
    entries: list[EntryOut]


class UserScoreOut(msgspec.Struct):
    user_id: str
    display_name: str
    score: int
    rank: int | None


class UserStateOut(msgspec.Struct):
    score: int
    banned: bool


class AuditOut(msgspec.Struct):
    audit_id: int
    actor_id: str
    action: str
    target_user_id: str
    reason: str
    before: UserStateOut
    after: UserStateOut
    at: str


class AuditLogOut(msgspec.Struct):
    entries: list[AuditOut]


class ActionOut(msgspec.Struct):
    action_id: str
    type: str
    points: int
    issued_at: str
    expires_at: str
    redeemed_at: str | None


class UserActionsOut(msgspec.Struct):
    user_id: str
    actions: list[ActionOut]


class ProblemOut(msgspec.Struct):
    type: str
    title: str
    status: int
    detail: str
    code: str


SCHEMAS = (
    RegisterRequest,
    LoginRequest,
    RefreshRequest,
    ActionRequest,
    ScoreUpdateRequest,
    UserOut,
    TokenPairOut,
    TicketOut,
    ScoreUpdatedOut,
    LeaderboardOut,
    UserScoreOut,
    AdminReasonRequest,
    ScoreCorrectionRequest,
    AuditOut,
    AuditLogOut,
    UserActionsOut,
    ProblemOut,
)
