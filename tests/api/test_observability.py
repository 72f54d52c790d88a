"""Metrics that move exactly as a scripted run says, security events, backend call timing, the
outbox's age, and readiness naming the backend that failed."""

from __future__ import annotations

import io
import json
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest

from scoreboard.config import Settings
from scoreboard.observability.security import COMMON_FIELDS, EVENTS, LOGGER
from scoreboard.services.outbox import OutboxRelay
from scoreboard.store.base import RedeemRequest
from tests.api.support import metric
from tests.conftest import PASSWORD, Api, ManualClock
from tests.faults import PrivateRedis


def capture_logs(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """The service's log output from now on (it writes to whatever sys.stderr is at the time). Called
    in the test body: pytest swaps sys.stderr itself between fixture setup and the test."""
    buffer = io.StringIO()
    monkeypatch.setattr(sys, "stderr", buffer)
    return buffer


def log_lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.startswith("{")]


async def metrics_text(api: Api) -> str:
    return (await api.http.get("/metrics")).text


async def test_a_scripted_run_moves_every_write_path_metric_by_what_it_did(api: Api) -> None:
    alice, bob = await api.user(), await api.user()
    tickets = [await api.ticket(alice) for _ in range(3)]
    before = await metrics_text(api)

    for action_id in tickets:
        assert (await api.update(alice, action_id)).status_code == 200
    assert (await api.update(alice, tickets[0])).status_code == 409
    assert (await api.update(bob, await api.ticket(bob), user_id=alice.user_id)).status_code == 403
    assert (await api.update(bob, await api.ticket(alice))).status_code == 403  # not bob's ticket
    after = await metrics_text(api)

    def moved(name: str, **labels: str) -> float:
        return metric(after, name, **labels) - metric(before, name, **labels)

    assert moved("scoreboard_score_updates_total", outcome="applied") == 3
    assert moved("scoreboard_score_updates_total", outcome="duplicate") == 1
    assert moved("scoreboard_score_updates_total", outcome="forbidden") == 2
    assert moved("scoreboard_points_awarded_total") == 3  # the default action is worth 1
    assert moved("scoreboard_top_changes_total") == 3  # alice's score is on the board each time
    assert moved("scoreboard_security_events_total", event="forbidden") == 2
    # Every redemption that reached the Store was timed, the duplicate and the refused ticket
    # included (answers, not errors); the one refused before the Store never reached it.
    redeem = {"backend": "database", "operation": "redeem"}
    assert moved("scoreboard_backend_call_duration_seconds_count", **redeem) == 5
    assert moved("scoreboard_backend_call_errors_total", **redeem) == 0
    # The in-memory cache does no I/O: not timed (the Redis one is: see the readiness test).
    assert 'scoreboard_backend_call_duration_seconds_count{backend="cache"' not in after
    assert metric(after, "scoreboard_build_info", version="0.1.0") == 1
    assert metric(after, "process_resident_memory_bytes") > 0


async def test_a_failing_backend_call_is_counted_as_an_error(api: Api) -> None:
    api.app.state.container.store._reader.shutdown()

    assert (await api.http.get("/readyz")).status_code == 503

    text = await metrics_text(api)
    ping = {"backend": "database", "operation": "ping"}
    assert metric(text, "scoreboard_backend_call_errors_total", **ping) == 1
    assert metric(text, "scoreboard_backend_call_duration_seconds_count", **ping) == 1
    assert metric(text, "scoreboard_backend_up", backend="database") == 0
    assert metric(text, "scoreboard_backend_up", backend="cache") == 1


async def test_the_outbox_reports_the_age_of_its_oldest_overdue_event(
    make_api: Callable[..., Any], settings: Settings
) -> None:
    clock = ManualClock()
    api: Api = await make_api(settings, clock=clock)
    container = api.app.state.container
    alice = await api.user()
    # Committed, but never applied or published: what a crash between commit and apply leaves.
    await container.store.redeem(RedeemRequest(alice.user_id, "lost-1", clock(), {}, open_points=5))
    clock.advance(42)
    relay = OutboxRelay(container.store, container.scores, container.keeper, clock, container.metrics)

    replayed = await relay.tick()
    found = await metrics_text(api)
    await relay.tick()
    drained = await metrics_text(api)

    assert replayed == 1
    assert metric(found, "scoreboard_outbox_backlog_events") == 1
    assert metric(found, "scoreboard_outbox_oldest_event_age_seconds") == pytest.approx(42, abs=1)
    assert metric(drained, "scoreboard_outbox_backlog_events") == 0
    assert metric(drained, "scoreboard_outbox_oldest_event_age_seconds") == 0


async def test_security_events_go_to_their_own_logger_with_stable_fields(
    make_api: Callable[..., Any], settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    stderr = capture_logs(monkeypatch)
    api: Api = await make_api(settings, rate_limit_actions="2/minute")
    alice, bob = await api.user(), await api.user()
    await api.http.post("/api/auth/login", json={"username": alice.username, "password": "nope"})
    await api.http.post("/api/score/update", json={}, headers={"Authorization": "Bearer not.a.token"})
    await api.update(bob, await api.ticket(bob), user_id=alice.user_id)
    for _ in range(3):
        await api.http.post("/api/actions", json={"type": "default"}, headers=alice.auth)

    events = {line["event"]: line for line in log_lines(stderr) if line.get("logger") == LOGGER}
    text = await metrics_text(api)

    assert set(events) == {
        "security.login_failed",
        "security.token_rejected",
        "security.forbidden",
        "security.rate_limited",
    }
    for name, line in events.items():
        assert line["level"] == "warning"
        assert line["client_ip"] == "203.0.113.7"
        assert line["request_id"]
        assert set(line) - COMMON_FIELDS <= set(EVENTS[name.removeprefix("security.")]), line
        assert metric(text, "scoreboard_security_events_total", event=name.removeprefix("security.")) == 1
    assert events["security.login_failed"]["username"] == alice.username
    assert events["security.token_rejected"]["reason"] == "malformed"
    assert events["security.forbidden"]["user_id"] == bob.user_id
    assert events["security.forbidden"]["target_user_id"] == alice.user_id
    assert events["security.rate_limited"]["limit"] == "actions"
    assert PASSWORD not in stderr.getvalue()


async def test_request_lines_carry_the_authenticated_user_route_status_and_duration(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    stderr = capture_logs(monkeypatch)
    alice = await api.user()

    await api.http.post(
        "/api/actions", json={"type": "default"}, headers={**alice.auth, "X-Request-ID": "r-42"}
    )

    line = next(line for line in log_lines(stderr) if line.get("request_id") == "r-42")
    assert line["event"] == "http.request"
    assert line["user_id"] == alice.user_id
    assert line["route"] == "/api/actions"
    assert line["status"] == 201
    assert line["duration_ms"] > 0


async def test_every_score_update_outcome_is_a_log_event(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    stderr = capture_logs(monkeypatch)
    alice, bob = await api.user(), await api.user()
    action_id = await api.ticket(alice)
    await api.update(alice, action_id)
    await api.update(alice, action_id)
    await api.update(bob, await api.ticket(bob), user_id=alice.user_id)
    await api.http.post("/api/score/update", json={"user_id": alice.user_id}, headers=alice.auth)
    await api.http.post("/api/score/update", json={})

    updates = [line for line in log_lines(stderr) if line.get("route") == "/api/score/update"]

    assert [line["outcome"] for line in updates] == [
        "applied",
        "duplicate",
        "forbidden",
        "invalid",
        "unauthenticated",
    ]
    assert updates[0]["new_score"] == 1
    assert updates[0]["points"] == 1


@pytest.mark.redis
async def test_readyz_names_the_backend_that_stopped_answering(
    make_api: Callable[..., Any], settings: Settings, private_redis: PrivateRedis
) -> None:
    redis = private_redis
    api: Api = await make_api(settings, redis_url=redis.url)
    healthy = await api.http.get("/readyz")
    redis.kill()
    started = time.monotonic()
    broken = await api.http.get("/readyz")
    took = time.monotonic() - started

    assert healthy.status_code == 200
    assert healthy.json()["failed"] == []
    assert broken.status_code == 503
    body = broken.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["cache"].startswith("failed")
    assert body["failed"] == ["cache", "broker"]  # the broker is the same Redis
    assert took < 3.0, "checks run at once, each within a short timeout"
    text = await metrics_text(api)
    assert metric(text, "scoreboard_backend_up", backend="cache") == 0
    assert metric(text, "scoreboard_backend_up", backend="database") == 1
    cache_ping = {"backend": "cache", "operation": "ping"}
    assert metric(text, "scoreboard_backend_call_duration_seconds_count", **cache_ping) == 2
    assert metric(text, "scoreboard_backend_call_errors_total", **cache_ping) == 1
    assert metric(text, "scoreboard_backend_call_errors_total", backend="broker", operation="ping") == 1
