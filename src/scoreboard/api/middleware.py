"""One pure-ASGI middleware for every request: request id, metrics and one structured log line."""

from __future__ import annotations

import itertools
import os
import re
import time
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from scoreboard.api.problems import PROBLEM_CODE_KEY
from scoreboard.observability.logging import get_logger
from scoreboard.observability.metrics import Metrics

log = get_logger("scoreboard.http")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
# Generated ids: a random tag per process plus a counter — unique across instances, and cheaper
# than a UUID per request.
_PROCESS_TAG = os.urandom(6).hex() + "-"
_SERIAL = itertools.count(1)
SCORE_UPDATE_ROUTE = "/api/score/update"
_OUTCOME_BY_CODE = {
    "duplicate_action": "duplicate",
    "score_overflow": "overflow",
    "forbidden": "forbidden",
    "csrf_failed": "forbidden",
    "rate_limited": "rate_limited",
    "invalid_request": "invalid",
    "payload_too_large": "invalid",
    "unauthenticated": "unauthenticated",
    "service_unavailable": "unavailable",
}


class RequestContext:
    """Tags each HTTP request with an id (accepting a sane `X-Request-ID`), echoes it, times the
    request, counts it by route template and logs it once — with the outcome of a score update and
    whatever the handlers bound to the log context (user id, new score...)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        echoed = (b"x-request-id", request_id.encode())
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), echoed]
            await send(message)

        structlog.contextvars.clear_contextvars()
        client = scope.get("client")
        structlog.contextvars.bind_contextvars(request_id=request_id, client_ip=client[0] if client else None)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self._record(scope, status, time.perf_counter() - started)

    def _record(self, scope: Scope, status: int, elapsed: float) -> None:
        route = _route_template(scope)
        method = scope["method"]
        counted, timed = self._metric_children(method, route, status)
        counted.inc()
        timed.observe(elapsed)
        extra: dict[str, str] = {}
        code = scope.get(PROBLEM_CODE_KEY)
        if code:
            extra["code"] = code
        if route == SCORE_UPDATE_ROUTE:
            extra["outcome"] = outcome = _update_outcome(scope, status)
            self.metrics.score_updates.labels(outcome).inc()
        log.info(
            "http.request",
            method=method,
            route=route,
            status=status,
            duration_ms=round(elapsed * 1000, 3),
            **extra,
        )

    def _metric_children(self, method: str, route: str, status: int) -> tuple[Any, Any]:
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (
                self.metrics.http_requests.labels(method, route, str(status)),
                self.metrics.http_duration.labels(method, route),
            )
        return children


def _update_outcome(scope: Scope, status: int) -> str:
    if status == 200:
        return "applied"
    return _OUTCOME_BY_CODE.get(scope.get(PROBLEM_CODE_KEY, ""), "error")


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            candidate = bytes(value).decode("latin-1")
            if _SAFE_ID.match(candidate):
                return candidate
    return f"{_PROCESS_TAG}{next(_SERIAL):x}"


def _route_template(scope: Scope) -> str:
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"
