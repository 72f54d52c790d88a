"""`GET /api/leaderboard/stream`: the live board as Server-Sent Events."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from starlette.responses import StreamingResponse

from scoreboard.api import openapi as doc
from scoreboard.api.deps import Container
from scoreboard.api.problems import Problem
from scoreboard.realtime.access import origin_allowed, viewer
from scoreboard.realtime.hub import Hub, Mailbox

router = APIRouter(tags=["scores"])
HEARTBEAT_SECONDS = 15.0
_EVENT_ID = re.compile(r"^(\d{1,20}):(\d{1,20})$")


def parse_event_id(value: str | None) -> tuple[int, int] | None:
    match = _EVENT_ID.match(value.strip()) if value else None
    return (int(match[1]), int(match[2])) if match else None


@router.get(
    "/api/leaderboard/stream",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "an event stream"},
        401: doc.problem(401),
        403: doc.problem(403),
    },
)
async def stream(request: Request) -> StreamingResponse:
    """The same snapshot and updates as `/ws`, as Server-Sent Events. Each event's `id` is
    `<epoch>:<seq>`; reconnecting with `Last-Event-ID` replays what was missed. Comment lines are
    sent as heartbeats."""
    container: Container = request.app.state.container
    if not origin_allowed(request.headers, container.settings.allowed_origins):
        raise Problem(403, "forbidden", "this origin may not open the stream")
    principal = await viewer(request.headers, request.cookies, container)
    if principal is None and not container.settings.public_scoreboard:
        raise Problem(401, "unauthenticated", "the scoreboard is not public; send an access token")
    hub: Hub = request.app.state.hub
    mailbox = Mailbox(hub, "sse")
    hub.subscribe(mailbox, parse_event_id(request.headers.get("last-event-id")))
    return StreamingResponse(
        _events(hub, mailbox),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _events(hub: Hub, mailbox: Mailbox) -> AsyncIterator[bytes]:
    metrics = hub.metrics
    metrics.connections.labels("sse").inc()
    sent = metrics.messages_sent.labels("sse")
    try:
        yield b"retry: 2000\n\n"
        while True:
            frame = await mailbox.next(idle_seconds=HEARTBEAT_SECONDS)
            if frame is None:
                if mailbox.closed:
                    return  # hung up: the server is stopping
                yield b": heartbeat\n\n"
                continue
            try:
                if frame.sse:
                    yield frame.sse
                    sent.inc()
            finally:
                frame.delivered()
    finally:
        hub.unsubscribe(mailbox)
        mailbox.close()
        metrics.connections.labels("sse").dec()
