"""The two hot endpoints as plain Starlette functions (see fast_lane): each only translates."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from scoreboard.api.bodies import read_json
from scoreboard.api.deps import Container, authenticate, client_address, viewer
from scoreboard.api.fast_lane import Endpoint
from scoreboard.api.problems import invalid
from scoreboard.api.responses import json_response, raw_json
from scoreboard.api.schemas import ScoreUpdatedOut, ScoreUpdateRequest
from scoreboard.config import Settings

SUCCESS = "Score updated successfully."
MAX_LIMIT = 100


async def update_score(request: Request) -> Response:
    container: Container = request.app.state.container
    caller = await authenticate(request)
    await container.scores.admit_update(caller, client_address(request))
    body = await read_json(request, ScoreUpdateRequest, container.settings.max_body_bytes)
    updated = await container.scores.update(caller, body.user_id, body.action_id)
    return json_response(ScoreUpdatedOut(SUCCESS, updated.new_score, updated.rank))


async def leaderboard(request: Request) -> Response:
    container: Container = request.app.state.container
    await viewer(request)
    return raw_json(await container.scores.leaderboard_json(board_limit(request.query_params.get("limit"))))


def board_limit(raw: str | None) -> int:
    if raw is None:
        return 10
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise invalid(f"limit must be a whole number from 1 to {MAX_LIMIT}, not {raw!r}")
    return int(raw)


def routes(settings: Settings) -> dict[tuple[str, str], Endpoint]:
    """The hot endpoints this process's role serves."""
    served: dict[tuple[str, str], Endpoint] = {}
    if settings.serves("api"):
        served[("POST", "/api/score/update")] = update_score
    if settings.serves("api") or settings.serves("realtime"):
        served[("GET", "/api/leaderboard")] = leaderboard
    return served
