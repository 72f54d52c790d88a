"""Operations routes: liveness, readiness, metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from fastapi import APIRouter, Response
from fastapi.responses import PlainTextResponse

from scoreboard.api.deps import Services
from scoreboard.api.responses import json_response
from scoreboard.observability.logging import get_logger

log = get_logger("scoreboard.ops")
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
    """Whether the database, cache and broker this instance is configured with answer, each by name;
    checked at once, each within READY_TIMEOUT_SECONDS. `failed` names the ones that did not."""
    checks = {
        "database": services.store.ping(),
        "cache": services.board.ping(),
        "broker": services.broker.ping(),
    }
    outcomes = await asyncio.gather(*(_check(check) for check in checks.values()))
    report = dict(zip(checks, outcomes, strict=True))
    failed = [name for name, outcome in report.items() if outcome != "ok"]
    for name, outcome in report.items():
        services.metrics.backend_up.labels(name).set(outcome == "ok")
    if failed:
        log.warning("readiness.failed", failed=failed, checks=report)
    body = {"status": "unavailable" if failed else "ready", "checks": report, "failed": failed}
    return json_response(body, 503 if failed else 200)


async def _check(ping: Awaitable[None]) -> str:
    try:
        await asyncio.wait_for(ping, READY_TIMEOUT_SECONDS)
    except TimeoutError:
        return f"failed: no answer within {READY_TIMEOUT_SECONDS:g} s"
    except Exception as error:
        return f"failed: {type(error).__name__}"
    return "ok"


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(services: Services) -> Response:
    """Prometheus metrics in the text exposition format."""
    return Response(services.metrics.render(), media_type=services.metrics.content_type)
