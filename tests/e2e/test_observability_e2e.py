"""Observability of a real `scoreboard serve`: metrics summed over several workers, and logs of a
whole API run that never contain a secret the run used."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable

import httpx
import pytest

from tests.api.support import metric
from tests.backends import REDIS_URL, require
from tests.conftest import PASSWORD
from tests.e2e.live_clients import Game, streaming, watching
from tests.e2e.server import Server, Servers
from tests.isolation import delete_redis_prefix, unique
from tests.postgres_support import private_database

pytestmark = pytest.mark.e2e


def fresh_connection_get(server: Server, path: str) -> httpx.Response:
    """One request on its own connection, so the kernel may hand it to any worker."""
    with httpx.Client(base_url=server.base_url, timeout=5.0) as client:
        return client.get(path)


@pytest.mark.postgres
@pytest.mark.redis
async def test_two_workers_report_the_sum_of_both_in_every_metrics_answer(servers: Servers) -> None:
    require("redis")
    prefix = unique()
    async with private_database() as database_url:
        try:
            server = servers.start(
                env={
                    "SCOREBOARD_DATABASE_URL": database_url,
                    "SCOREBOARD_REDIS_URL": REDIS_URL,
                    "SCOREBOARD_REDIS_PREFIX": prefix,
                    "PROMETHEUS_MULTIPROC_DIR": None,  # `serve --workers 2` sets one up itself
                },
                args=("--workers", "2"),
            )
            already = metric(
                fresh_connection_get(server, "/metrics").text,
                "scoreboard_http_requests_total",
                route="/healthz",
            )
            for _ in range(30):
                assert fresh_connection_get(server, "/healthz").status_code == 200
            answers = [fresh_connection_get(server, "/metrics").text for _ in range(6)]
        finally:
            servers.stop_all()
            await delete_redis_prefix(prefix)

    for text in answers:
        assert metric(text, "scoreboard_http_requests_total", route="/healthz") == already + 30
        workers = {
            line.split('pid="')[1].split('"')[0]
            for line in text.splitlines()
            if line.startswith("scoreboard_build_info{")
        }
        assert len(workers) == 2, "every live worker's samples are in the answer"


def test_the_logs_of_a_full_api_run_never_contain_a_secret_it_used(servers: Servers) -> None:
    server = servers.start()
    secrets: list[str] = [PASSWORD]
    username = f"u{uuid.uuid4().hex[:10]}"
    with httpx.Client(base_url=server.base_url, timeout=10.0) as http:
        registered = http.post("/api/auth/register", json={"username": username, "password": PASSWORD})
        assert registered.status_code == 201
        user_id = registered.json()["user_id"]
        assert (
            http.post(
                "/api/auth/login", json={"username": username, "password": "wrong-" + PASSWORD}
            ).status_code
            == 401
        )
        secrets.append("wrong-" + PASSWORD)
        login = http.post("/api/auth/login", json={"username": username, "password": PASSWORD})
        tokens = login.json()
        cookie, csrf = http.cookies["access_token"], tokens["csrf_token"]
        secrets += [tokens["access_token"], tokens["refresh_token"], cookie, csrf]
        bearer = {"Authorization": f"Bearer {tokens['access_token']}", "X-Request-ID": "flow-1"}
        action = http.post("/api/actions", json={"type": "default"}, headers=bearer).json()["action_id"]
        update = http.post(
            "/api/score/update", json={"user_id": user_id, "action_id": action}, headers=bearer
        )
        assert update.status_code == 200
        assert update.headers["x-request-id"] == "flow-1"
        # Cookie-authenticated write: the cookie plus the CSRF header.
        ticket = http.post("/api/actions", json={"type": "default"}, headers={"X-CSRF-Token": csrf})
        assert ticket.status_code == 201, ticket.text
        assert http.post("/api/actions", json={"type": "default"}).status_code == 403  # no CSRF header
        http.cookies.clear()
        refreshed = http.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).json()
        secrets += [refreshed["access_token"], refreshed["refresh_token"]]
        assert (
            http.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).status_code == 401
        )
        fresh = {"Authorization": f"Bearer {refreshed['access_token']}"}
        assert http.post("/api/auth/logout", headers=fresh).status_code == 204
        assert http.post("/api/actions", json={"type": "default"}, headers=fresh).status_code == 401
    server.stop()
    logs = server.stderr + server.stdout

    lines = [json.loads(line) for line in server.stderr.splitlines() if line.startswith("{")]
    flow = [line for line in lines if line.get("request_id") == "flow-1"]
    assert [line["event"] for line in flow] == ["http.request"] * 2  # the ticket, then the update
    assert flow[1]["outcome"] == "applied"
    assert all(line["user_id"] == user_id for line in flow)
    security = {line["event"] for line in lines if line.get("logger") == "scoreboard.security"}
    assert security == {
        "security.login_failed",
        "security.forbidden",  # the cookie write without its CSRF header
        "security.refresh_reused",
        "security.token_rejected",  # the logged-out token
    }
    for secret in secrets:
        assert secret not in logs
        if secret.count(".") == 2:  # a JWT: not even its signature
            assert secret.rsplit(".", 1)[1] not in logs


async def test_realtime_metrics_follow_real_subscribers(servers: Servers) -> None:
    server = servers.start(env={"SCOREBOARD_ACTION_POLICY": "open"})
    game = Game(server)
    try:
        player = await game.join()
        async with watching(server) as first, watching(server) as second, streaming(server) as stream:
            for watcher in (first, second):
                assert (await watcher.next())["type"] == "snapshot"
            await stream.next()
            await game.score(player)
            for watcher in (first, second):
                assert (await watcher.next())["type"] == "update"
            await stream.next()
            # A frame is counted once written: just after the client may have read it.
            during = await metrics_when(game, lambda text: sent(text, "ws") == 4 and sent(text, "sse") == 2)
        after = await metrics_when(game, lambda text: connected(text, "ws") == connected(text, "sse") == 0)
    finally:
        await game.http.aclose()

    assert connected(during, "ws") == 2
    assert connected(during, "sse") == 1
    assert sent(during, "ws") == 4  # 2 snapshots, 2 updates
    assert sent(during, "sse") == 2
    assert metric(during, "scoreboard_broadcast_duration_seconds_count") == 1
    assert metric(during, "scoreboard_top_changes_total") == 1
    assert connected(after, "ws") == 0
    assert connected(after, "sse") == 0


def sent(text: str, transport: str) -> float:
    return metric(text, "scoreboard_realtime_messages_sent_total", transport=transport)


def connected(text: str, transport: str) -> float:
    return metric(text, "scoreboard_realtime_connections", transport=transport)


async def metrics_when(game: Game, ready: Callable[[str], bool], within: float = 5.0) -> str:
    """/metrics once `ready` holds (a disconnect is noticed asynchronously), or at the deadline."""
    deadline = time.monotonic() + within
    while True:
        text = (await game.http.get("/metrics")).text
        if ready(text) or time.monotonic() > deadline:
            return text
        await asyncio.sleep(0.05)
