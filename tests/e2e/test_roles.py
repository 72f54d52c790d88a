"""`scoreboard serve --role`: the HTTP API, the WebSocket/SSE fan-out and the outbox relay as separate
processes sharing only PostgreSQL and Redis — and whose `X-Forwarded-For` the API believes."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.e2e.cluster import shared_backends
from tests.e2e.server import Server, Servers, run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]
SUBSCRIBE = json.dumps({"type": "subscribe", "channel": "scoreboard_updates"})
PASSWORD = "correct horse battery staple"


@dataclass
class Split:
    api: Server
    realtime: Server
    relay: Server


@pytest.fixture
async def split(servers: Servers) -> AsyncIterator[Split]:
    async with shared_backends() as shared:
        started = {
            role: servers.start(role, env=shared, args=("--role", role))
            for role in ("api", "realtime", "relay")
        }
        try:
            yield Split(**started)
        finally:
            for server in started.values():
                server.stop()


async def player(http: httpx.AsyncClient) -> tuple[str, dict[str, str]]:
    username = f"role_{uuid.uuid4().hex[:10]}"
    registered = await http.post("/api/auth/register", json={"username": username, "password": PASSWORD})
    assert registered.status_code == 201, registered.text
    login = await http.post("/api/auth/login", json={"username": username, "password": PASSWORD})
    return registered.json()["user_id"], {"Authorization": f"Bearer {login.json()['access_token']}"}


async def test_an_update_on_the_api_process_reaches_a_subscriber_of_the_realtime_process(
    split: Split,
) -> None:
    async with (
        httpx.AsyncClient(base_url=split.api.base_url, timeout=10) as api,
        connect(f"ws://127.0.0.1:{split.realtime.port}/ws") as ws,
    ):
        await ws.send(SUBSCRIBE)
        snapshot = json.loads(await asyncio.wait_for(ws.recv(), 5))
        user_id, auth = await player(api)

        updated = await api.post(
            "/api/score/update", json={"user_id": user_id, "action_id": str(uuid.uuid4())}, headers=auth
        )

        assert updated.status_code == 200, updated.text
        update = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert update["type"] == "update"
        assert update["seq"] == snapshot["seq"] + 1
        assert {"user_id": user_id, "score": 1} == {k: update["top"][0][k] for k in ("user_id", "score")}


async def test_each_role_serves_only_its_part(split: Split) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        for server in (split.api, split.realtime, split.relay):
            assert (await http.get(f"{server.base_url}/healthz")).status_code == 200
            assert (await http.get(f"{server.base_url}/readyz")).status_code == 200
        update = {"user_id": str(uuid.uuid4()), "action_id": str(uuid.uuid4())}
        assert (
            await http.post(f"{split.realtime.base_url}/api/score/update", json=update)
        ).status_code == 404
        assert (await http.post(f"{split.relay.base_url}/api/auth/login", json={})).status_code == 404
        assert (await http.get(f"{split.relay.base_url}/api/leaderboard")).status_code == 404
        assert (await http.get(f"{split.realtime.base_url}/api/leaderboard")).status_code == 200
        assert (await http.get(f"{split.api.base_url}/api/leaderboard/stream")).status_code == 404
    for server in (split.api, split.relay):
        with pytest.raises(InvalidStatus):
            async with connect(f"ws://127.0.0.1:{server.port}/ws", open_timeout=5):
                pass


def test_a_split_role_on_the_embedded_backends_is_refused_with_the_reason(tmp_path: Path) -> None:
    result = run_cli("serve", "--role", "api", workdir=tmp_path)

    assert result.returncode == 2
    assert "--role api needs shared state" in result.stderr
    assert "SCOREBOARD_REDIS_URL" in result.stderr


# --- the client's address behind a proxy -------------------------------------------------------------


async def registrations_from(server: Server, addresses: list[str]) -> list[int]:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
        statuses = []
        for address in addresses:
            body = {"username": f"fwd_{uuid.uuid4().hex[:10]}", "password": PASSWORD}
            response = await http.post("/api/auth/register", json=body, headers={"X-Forwarded-For": address})
            statuses.append(response.status_code)
        return statuses


async def logged_clients(server: Server, count: int) -> list[str]:
    """The client address of the first `count` logged registrations, as the server saw them (the
    request's log line is written just after its answer, so wait for it, briefly)."""
    for _ in range(100):
        lines = [json.loads(line) for line in server.stderr.splitlines() if line.startswith("{")]
        clients = [line["client_ip"] for line in lines if line.get("route") == "/api/auth/register"]
        if len(clients) >= count:
            return clients
        await asyncio.sleep(0.05)
    return clients


LIMITED = {"SCOREBOARD_RATE_LIMIT_REGISTER": "2/minute"}


async def test_a_trusted_proxy_names_the_client_so_per_address_limits_see_each_client(
    servers: Servers,
) -> None:
    server = servers.start(env={**LIMITED, "SCOREBOARD_TRUSTED_PROXIES": "127.0.0.1"})

    statuses = await registrations_from(server, ["203.0.113.1"] * 3 + ["203.0.113.2"])

    assert statuses == [201, 201, 429, 201]
    assert await logged_clients(server, 4) == ["203.0.113.1"] * 3 + ["203.0.113.2"]


async def test_forwarded_for_from_an_untrusted_peer_is_ignored(servers: Servers) -> None:
    server = servers.start(env={**LIMITED, "SCOREBOARD_TRUSTED_PROXIES": "10.0.0.0/8"})

    statuses = await registrations_from(server, ["203.0.113.1", "203.0.113.1", "203.0.113.1"])

    assert await logged_clients(server, 3) == ["127.0.0.1"] * 3  # the real peer, whatever the header says
    # ... and a loopback peer (a local proxy not listed as trusted, a test) has no per-address budget
    assert statuses == [201, 201, 201]


async def test_several_workers_on_one_port_share_one_board(servers: Servers) -> None:
    async with shared_backends() as env:
        server = servers.start("workers", env=env, args=("--workers", "2"))
        try:
            children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
            workers = [pid for pid in children if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]
            watchers = [connect(f"ws://127.0.0.1:{server.port}/ws") for _ in range(12)]
            sockets = [await watcher.__aenter__() for watcher in watchers]
            for ws in sockets:
                await ws.send(SUBSCRIBE)
                assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "snapshot"
            async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as api:
                user_id, auth = await player(api)
                for _ in range(3):
                    body = {"user_id": user_id, "action_id": str(uuid.uuid4())}
                    assert (await api.post("/api/score/update", json=body, headers=auth)).status_code == 200
            seen = [
                [json.loads(await asyncio.wait_for(ws.recv(), 5))["seq"] for _ in range(3)] for ws in sockets
            ]
            for watcher in watchers:
                await watcher.__aexit__(None, None, None)
        finally:
            server.stop()

    assert len(workers) == 2, "two worker processes under one supervisor"
    assert len({tuple(seqs) for seqs in seen}) == 1, "every socket, on either worker, saw the same updates"
