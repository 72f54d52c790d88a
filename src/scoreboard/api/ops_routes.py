"""Operations routes: liveness, readiness, metrics."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Response
from fastapi.responses import PlainTextResponse

from scoreboard.api.deps import Services
from scoreboard.api.responses import json_response

router = APIRouter(tags=["operations"])
READY_TIMEOUT_SECONDS = 2.0


@router.get("/healthz")
async def healthz() -> Response:
    """The process is alive."""
    return json_response({"status": "ok"})


@router.get(
    "/readyz",
    responses={
        503: {
            "description": "a configured backend does not answer (the same report, not a problem document)",
            "content": {"application/json": {}},
        }
    },
)
async def readyz(services: Services) -> Response:
    """Whether the database, cache and broker this instance is configured with answer, each by name."""
    checks = {
        "database": services.store.ping(),
        "cache": services.board.ping(),
        "broker": services.broker.ping(),
    }
    report: dict[str, str] = {}
    for name, check in checks.items():
        try:
            await asyncio.wait_for(check, READY_TIMEOUT_SECONDS)
            report[name] = "ok"
        except Exception as error:
            report[name] = f"failed: {type(error).__name__}"
    ready = all(v == "ok" for v in report.values())
    return json_response(
        {"status": "ready" if ready else "unavailable", "checks": report}, 200 if ready else 503
    )


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(services: Services) -> Response:
    """Prometheus metrics in the text exposition format."""
    return Response(services.metrics.render(), media_type=services.metrics.content_type)
