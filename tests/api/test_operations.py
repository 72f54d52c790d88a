"""Operations: health, readiness, metrics, the API description, routing errors, request ids, logs."""

from __future__ import annotations

import asyncio
import io
import json
import re
import sys
from collections.abc import Callable
from typing import Any

import pytest

from scoreboard.config import Settings
from tests.api.support import assert_problem, metric
from tests.conftest import PASSWORD, Api

API_PATHS = {
    "/api/auth/register",
    "/api/auth/login",
    "/api/auth/refresh",
    "/api/auth/logout",
    "/.well-known/jwks.json",
    "/api/actions",
    "/api/score/update",
    "/api/leaderboard",
    "/api/users/{user_id}/score",
    "/healthz",
    "/readyz",
    "/metrics",
}


async def test_healthz_says_the_process_is_alive(api: Api) -> None:
    response = await api.http.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_reports_each_configured_backend(api: Api) -> None:
    response = await api.http.get("/readyz")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["cache"] == "ok"
    assert set(body["checks"].values()) == {"ok"}


async def test_readyz_is_503_when_the_database_does_not_answer(api: Api) -> None:
    api.app.state.container.store._reader.shutdown()

    response = await api.http.get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"].startswith("failed")
    assert body["checks"]["cache"] == "ok"


async def metrics_text(api: Api) -> str:
    response = await api.http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


async def test_metrics_count_requests_and_score_updates_by_outcome(api: Api) -> None:
    alice = await api.user()
    action_id = await api.ticket(alice)
    before = await metrics_text(api)

    await api.update(alice, action_id)
    after_applied = await metrics_text(api)
    await api.update(alice, action_id)
    after_duplicate = await metrics_text(api)

    def updates(text: str, outcome: str) -> float:
        return metric(text, "scoreboard_score_updates_total", outcome=outcome)

    assert updates(after_applied, "applied") == updates(before, "applied") + 1
    assert updates(after_applied, "duplicate") == updates(before, "duplicate")
    assert updates(after_duplicate, "duplicate") == updates(before, "duplicate") + 1
    assert updates(after_duplicate, "applied") == updates(before, "applied") + 1
    requests = {"method": "POST", "route": "/api/score/update"}
    assert metric(after_duplicate, "scoreboard_http_requests_total", status="200", **requests) == 1
    assert metric(after_duplicate, "scoreboard_http_requests_total", status="409", **requests) == 1
    assert metric(after_duplicate, "scoreboard_http_request_duration_seconds_count", **requests) == 2


async def test_metrics_label_unmatched_paths_without_the_raw_path(api: Api) -> None:
    await api.http.get("/no/such/path/abc123")

    text = await metrics_text(api)

    assert "abc123" not in text
    assert metric(text, "scoreboard_http_requests_total", route="unmatched", status="404") == 1


async def test_openapi_describes_every_route_and_never_422(api: Api) -> None:
    response = await api.http.get("/openapi.json")

    assert response.status_code == 200
    document = response.json()
    assert set(document["paths"]) >= API_PATHS
    # Only the prose of info.description may mention 422 (to say it is never used).
    assert "422" not in json.dumps({k: v for k, v in document.items() if k != "info"})
    for operations in document["paths"].values():
        for operation in operations.values():
            assert "422" not in operation["responses"]
    assert "HTTPValidationError" not in document["components"]["schemas"]
    update = document["paths"]["/api/score/update"]["post"]
    assert {"200", "400", "401", "403", "409", "429", "503"} <= set(update["responses"])
    request_schema = document["components"]["schemas"]["ScoreUpdateRequest"]
    assert request_schema["additionalProperties"] is False
    assert set(request_schema["required"]) == {"user_id", "action_id"}


async def test_docs_page_is_html(api: Api) -> None:
    response = await api.http.get("/docs")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "/openapi.json" in response.text


async def test_unknown_path_is_a_404_problem(api: Api) -> None:
    response = await api.http.get("/api/nothing-here")

    assert_problem(response, 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/api/score/update"), ("DELETE", "/api/leaderboard"), ("GET", "/api/auth/login")],
)
async def test_wrong_method_is_a_405_problem(api: Api, method: str, path: str) -> None:
    response = await api.http.request(method, path)

    assert_problem(response, 405, "method_not_allowed")
    assert response.headers["allow"]


async def test_request_id_is_echoed_when_sent(api: Api) -> None:
    response = await api.http.get("/healthz", headers={"X-Request-ID": "trace-abc.123"})

    assert response.headers["x-request-id"] == "trace-abc.123"


async def test_request_id_is_generated_when_missing_or_unsafe(api: Api) -> None:
    missing = await api.http.get("/healthz")
    again = await api.http.get("/healthz")
    unsafe = await api.http.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"})

    generated = r"[0-9a-f]{12}-[0-9a-f]+"  # a per-process tag and a counter
    assert re.fullmatch(generated, missing.headers["x-request-id"])
    assert missing.headers["x-request-id"] != again.headers["x-request-id"]
    assert re.fullmatch(generated, unsafe.headers["x-request-id"])


async def test_request_id_is_on_problem_responses_too(api: Api) -> None:
    response = await api.http.post("/api/score/update", headers={"X-Request-ID": "req-1"})

    assert response.status_code == 401
    assert response.headers["x-request-id"] == "req-1"


async def test_logs_never_contain_passwords_or_tokens(
    monkeypatch: pytest.MonkeyPatch, make_api: Callable[..., Any], settings: Settings
) -> None:
    # The service logs to whatever sys.stderr is when the app is made. A buffer of our own rather
    # than capsys/capfd: pytest closes those after the test body, while the app still logs as it stops.
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    api: Api = await make_api(settings)
    alice = await api.user()
    action_id = await api.ticket(alice)
    await api.update(alice, action_id)
    await api.update(alice, action_id)
    refreshed = (
        await api.http.post("/api/auth/refresh", json={"refresh_token": alice.tokens["refresh_token"]})
    ).json()
    await api.http.post("/api/auth/login", json={"username": alice.username, "password": "wrong " + PASSWORD})
    await api.http.post("/api/auth/logout", headers={"Authorization": f"Bearer {refreshed['access_token']}"})
    await api.http.post(
        "/api/actions", json={"type": "default"}, headers={"Authorization": "Bearer " + "x" * 40}
    )

    logs = stderr.getvalue()

    assert "login.succeeded" in logs  # the capture really holds the service's log lines
    assert '"outcome":"applied"' in logs  # the score update's request line
    for secret in (
        PASSWORD,
        alice.token,
        alice.tokens["refresh_token"],
        alice.tokens["csrf_token"],
        refreshed["access_token"],
        refreshed["refresh_token"],
        "x" * 40,
    ):
        assert secret not in logs
    # Not even the signature part of a token.
    assert alice.token.rsplit(".", 1)[1] not in logs


async def test_metrics_show_how_many_writes_shared_each_commit(api: Api) -> None:
    alice = await api.user()
    tickets = [await api.ticket(alice) for _ in range(20)]
    await asyncio.gather(*(api.update(alice, action_id) for action_id in tickets))

    text = (await api.http.get("/metrics")).text
    commits = metric(text, "scoreboard_store_commit_batch_writes_count")
    writes = metric(text, "scoreboard_store_commit_batch_writes_sum")
    assert writes >= 20 + 20 + 2  # tickets, redemptions, the account and its refresh token
    assert 0 < commits < writes  # concurrent redemptions shared commits
