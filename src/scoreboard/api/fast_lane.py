"""The hot routes, served without FastAPI's routing and dependency injection.

`POST /api/score/update` and `GET /api/leaderboard` are what every client calls all the time, so
they are plain Starlette endpoints dispatched by exact method and path before FastAPI's router.
FastAPI still documents them: their route declarations in `score_routes` delegate to the same
endpoints, so there is one implementation whichever way a request arrives.
WebSocket endpoints (`/ws`) are plain ASGI apps dispatched by path, so they receive the server's
own `send` (the realtime hub writes pre-built frames through it; see `realtime/direct.py`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from scoreboard.api.problems import respond

Endpoint = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class RouteTemplate:
    """What the request middleware reads as `scope["route"]` for metrics and logs."""

    path: str


class FastLane:
    def __init__(
        self,
        app: ASGIApp,
        routes: dict[tuple[str, str], Endpoint],
        sockets: dict[str, ASGIApp] | None = None,
    ) -> None:
        self.app = app
        self._sockets = dict(sockets or {})
        self._routes = dict(routes)
        for (method, path), endpoint in routes.items():
            if method == "GET":
                self._routes[("HEAD", path)] = endpoint
        self._templates = {path: RouteTemplate(path) for _, path in routes}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            endpoint = self._routes.get((scope["method"], scope["path"]))
            if endpoint is not None:
                scope["route"] = self._templates[scope["path"]]
                request = Request(scope, receive)
                try:
                    response = await endpoint(request)
                except Exception as exc:
                    response = respond(request, exc)
                await response(scope, receive, send)
                return
        elif scope["type"] == "websocket" and (socket := self._sockets.get(scope["path"])):
            await socket(scope, receive, send)
            return
        await self.app(scope, receive, send)
