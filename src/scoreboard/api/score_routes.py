"""Action and score routes. The two hot ones are served by the fast lane (see api/fast_lane.py);
their declarations here document them and delegate to the same endpoints."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

from scoreboard.api import hot_routes
from scoreboard.api import openapi as doc
from scoreboard.api.bodies import CANONICAL_UUID, read_json
from scoreboard.api.deps import Caller, Services, Viewer, client_address
from scoreboard.api.responses import json_response
from scoreboard.api.schemas import (
    ActionRequest,
    LeaderboardOut,
    ScoreUpdatedOut,
    ScoreUpdateRequest,
    TicketOut,
    UserScoreOut,
)

router = APIRouter(tags=["scores"])
reads = APIRouter(tags=["scores"])  # also served by realtime-only processes


@router.post(
    "/api/actions",
    status_code=201,
    openapi_extra=doc.body(ActionRequest),
    responses=doc.responses((201, TicketOut), 400, 401, 403, 429, 503),
)
async def request_action(request: Request, caller: Caller, services: Services) -> Response:
    """Issue a ticket for one action of a configured type. Redeem its `action_id` through
    `POST /api/score/update` once the action is completed, before `expires_at`."""
    body = await read_json(request, ActionRequest, services.settings.max_body_bytes)
    ticket = await services.scores.issue_action(caller, body.type, client_address(request))
    return json_response(
        TicketOut(
            ticket.action_id,
            ticket.type,
            ticket.points,
            ticket.issued_at.isoformat(),
            ticket.expires_at.isoformat(),
        ),
        201,
    )


@router.post(
    "/api/score/update",
    openapi_extra=doc.body(ScoreUpdateRequest),
    responses=doc.responses((200, ScoreUpdatedOut), 400, 401, 403, 409, 413, 429, 503),
)
async def update_score(request: Request) -> Response:
    """Redeem a completed action: the user's score rises by its points exactly once. A repeated
    `action_id` answers 409 `duplicate_action` with the current `score`. Needs a bearer token (or the
    cookie plus `X-CSRF-Token`); only role `service` or `admin` may act for another user."""
    return await hot_routes.update_score(request)


@reads.get(
    "/api/leaderboard",
    responses=doc.responses((200, LeaderboardOut), 400, 401),
)
async def leaderboard(request: Request, limit: Annotated[int, Query(ge=1, le=100)] = 10) -> Response:
    """The top `limit` users (1-100, default 10) with the board's `epoch` and `seq`."""
    return await hot_routes.leaderboard(request)


@reads.get(
    "/api/users/{user_id}/score",
    responses=doc.responses((200, UserScoreOut), 400, 401, 404),
)
async def user_score(
    _: Viewer, services: Services, user_id: Annotated[str, Path(pattern=CANONICAL_UUID)]
) -> Response:
    """A user's score and rank (rank is null while the score is 0)."""
    standing = await services.scores.standing(user_id)
    return json_response(UserScoreOut(standing.user_id, standing.display_name, standing.score, standing.rank))
