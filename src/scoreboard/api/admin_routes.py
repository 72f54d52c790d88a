"""Admin routes (role `admin`): a user's recent actions, ban and unban, score corrections and the
audit log. Each handler only translates; services/moderation.py decides and checks the role."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

from scoreboard.api import openapi as doc
from scoreboard.api.bodies import CANONICAL_UUID, read_json
from scoreboard.api.deps import Caller, Services
from scoreboard.api.responses import json_response
from scoreboard.api.schemas import (
    ActionOut,
    AdminReasonRequest,
    AuditLogOut,
    AuditOut,
    ScoreCorrectionRequest,
    UserActionsOut,
    UserStateOut,
)
from scoreboard.domain.model import AuditRecord, Ticket

router = APIRouter(prefix="/api/admin", tags=["admin"])

UserId = Annotated[str, Path(pattern=CANONICAL_UUID)]
Limit = Annotated[int, Query(ge=1, le=500)]
ACT_ANSWERS = doc.responses((200, AuditOut), 400, 401, 403, 404, 413, 503)


def _audit_out(record: AuditRecord) -> AuditOut:
    return AuditOut(
        record.audit_id,
        record.actor_id,
        str(record.action),
        record.target_id,
        record.reason,
        UserStateOut(record.before.score, record.before.banned),
        UserStateOut(record.after.score, record.after.banned),
        record.at.isoformat(),
    )


def _action_out(ticket: Ticket) -> ActionOut:
    redeemed = None if ticket.redeemed_at is None else ticket.redeemed_at.isoformat()
    return ActionOut(
        ticket.action_id,
        ticket.type,
        ticket.points,
        ticket.issued_at.isoformat(),
        ticket.expires_at.isoformat(),
        redeemed,
    )


@router.get(
    "/users/{user_id}/actions", responses=doc.responses((200, UserActionsOut), 400, 401, 403, 404, 503)
)
async def user_actions(caller: Caller, services: Services, user_id: UserId, limit: Limit = 50) -> Response:
    """The user's newest `limit` actions (1-500, default 50), newest first: each ticket's type,
    points, when it was issued and expires, and when it was redeemed (null while it is not)."""
    tickets = await services.moderation.recent_actions(caller, user_id, limit)
    return json_response(UserActionsOut(user_id, [_action_out(t) for t in tickets]))


@router.post("/users/{user_id}/ban", openapi_extra=doc.body(AdminReasonRequest), responses=ACT_ANSWERS)
async def ban(request: Request, caller: Caller, services: Services, user_id: UserId) -> Response:
    """Ban a user: their score leaves the board (a changed top 10 is published), their access
    tokens are refused on every instance, their refresh tokens are revoked and they cannot log in.
    Their score stays stored. Answers the audit record."""
    body = await read_json(request, AdminReasonRequest, services.settings.max_body_bytes)
    return json_response(_audit_out(await services.moderation.ban(caller, user_id, body.reason)))


@router.post("/users/{user_id}/unban", openapi_extra=doc.body(AdminReasonRequest), responses=ACT_ANSWERS)
async def unban(request: Request, caller: Caller, services: Services, user_id: UserId) -> Response:
    """Lift a ban: the stored score returns to the board, counted as reached now. The user logs in
    again to get a new token. Answers the audit record."""
    body = await read_json(request, AdminReasonRequest, services.settings.max_body_bytes)
    return json_response(_audit_out(await services.moderation.unban(caller, user_id, body.reason)))


@router.post("/users/{user_id}/score", openapi_extra=doc.body(ScoreCorrectionRequest), responses=ACT_ANSWERS)
async def correct_score(request: Request, caller: Caller, services: Services, user_id: UserId) -> Response:
    """Set a user's score (0 to 2^63-1). For the tie-break the new score counts as reached at the
    moment of the correction. Answers the audit record with the score before and after."""
    body = await read_json(request, ScoreCorrectionRequest, services.settings.max_body_bytes)
    record = await services.moderation.correct_score(caller, user_id, body.score, body.reason)
    return json_response(_audit_out(record))


@router.get("/audit", responses=doc.responses((200, AuditLogOut), 400, 401, 403, 503))
async def audit(caller: Caller, services: Services, limit: Limit = 50) -> Response:
    """Every admin act, newest first (at most `limit`, 1-500, default 50): who, what, to whom, why,
    when, and the user's score and ban state before and after."""
    records = await services.moderation.audit_log(caller, limit)
    return json_response(AuditLogOut([_audit_out(r) for r in records]))
