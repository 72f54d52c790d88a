"""The product's main flow and its exactly-once promise, over real TCP against `scoreboard serve`."""

from __future__ import annotations

import asyncio
import json
import re

import pytest

from tests.e2e.client import PASSWORD, Client
from tests.e2e.server import Server

pytestmark = pytest.mark.e2e


async def test_whole_flow_register_login_ticket_update_and_read_back(shared_server: Server) -> None:
    async with Client(shared_server.base_url) as client:
        alice = await client.player()
        action_id = await client.ticket(alice)

        first = await client.update(alice, action_id)
        again = await client.update(alice, action_id)
        board = await client.board()
        standing = await client.score(alice.user_id)

    assert first.status_code == 200, first.text
    updated = first.json()
    assert set(updated) == {"message", "new_score", "rank"}
    assert (updated["message"], updated["new_score"]) == ("Score updated successfully.", 1)
    assert again.status_code == 409
    assert again.headers["content-type"].startswith("application/problem+json")
    assert again.json()["code"] == "duplicate_action"
    assert again.json()["score"] == 1
    mine = [entry for entry in board["entries"] if entry["user_id"] == alice.user_id]
    rank = updated["rank"]
    assert mine == [{"rank": rank, "user_id": alice.user_id, "display_name": alice.username, "score": 1}]
    assert standing == {"user_id": alice.user_id, "display_name": alice.username, "score": 1, "rank": rank}
    assert isinstance(board["epoch"], int)
    assert isinstance(board["seq"], int)


async def test_operations_endpoints_answer_over_tcp(shared_server: Server) -> None:
    async with Client(shared_server.base_url) as client:
        await client.earn(await client.player())
        healthz = await client.http.get("/healthz")
        readyz = await client.http.get("/readyz")
        metrics = await client.http.get("/metrics")
        openapi = await client.http.get("/openapi.json")
        docs = await client.http.get("/docs")

    assert healthz.status_code == 200
    assert readyz.status_code == 200, readyz.text
    assert readyz.json()["status"] == "ready"
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    assert re.search(r"^scoreboard_http_requests_total\{.*\} [1-9]", metrics.text, re.MULTILINE)
    assert re.search(r"^scoreboard_score_updates_total\{.*\} [1-9]", metrics.text, re.MULTILINE)
    assert "scoreboard_http_request_duration_seconds_bucket" in metrics.text
    assert openapi.status_code == 200
    assert {"/api/auth/register", "/api/actions", "/api/score/update", "/api/leaderboard"} <= set(
        openapi.json()["paths"]
    )
    assert docs.status_code == 200


async def test_fifty_concurrent_updates_with_one_action_id_apply_once(shared_server: Server) -> None:
    async with Client(shared_server.base_url) as client:
        bob = await client.player()
        action_id = await client.ticket(bob)

        responses = await asyncio.gather(*(client.update(bob, action_id) for _ in range(50)))
        standing = await client.score(bob.user_id)

    codes = sorted(response.status_code for response in responses)
    assert codes == [200] + [409] * 49
    assert [r.json()["new_score"] for r in responses if r.status_code == 200] == [1]
    assert {r.json()["score"] for r in responses if r.status_code == 409} == {1}
    assert standing["score"] == 1


async def test_logs_never_contain_passwords_or_tokens(shared_server: Server) -> None:
    async with Client(shared_server.base_url) as client:
        carol = await client.player()
        await client.earn(carol)
        await client.http.get("/api/leaderboard", headers=carol.auth)

    logs = shared_server.stdout + shared_server.stderr
    assert any(
        json.loads(line).get("event") == "http.request" for line in logs.splitlines() if line.startswith("{")
    )
    assert PASSWORD not in logs
    assert carol.access_token not in logs
    assert carol.access_token.split(".")[2] not in logs  # not even the signature
