"""What survives a process: first start with no configuration, graceful restart, and kill -9."""

from __future__ import annotations

import asyncio
import json
import signal
import stat
from collections import Counter
from collections.abc import Callable

import httpx
import pytest

from tests.e2e.client import Client, Player
from tests.e2e.server import ServerFailed, Servers

pytestmark = pytest.mark.e2e


async def test_embedded_default_needs_no_configuration(servers: Servers) -> None:
    server = servers.start(env={"SCOREBOARD_DATABASE_URL": None, "SCOREBOARD_JWT_SECRET": None})

    async with Client(server.base_url) as client:
        score = await client.earn(await client.player())

    assert score == 1
    assert (server.workdir / "scoreboard.db").is_file()
    secret = server.workdir / "jwt-secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert len(secret.read_text().strip()) >= 32


async def test_scores_accounts_and_tokens_survive_a_graceful_restart(servers: Servers) -> None:
    server = servers.start()
    async with Client(server.base_url) as client:
        alice, bob, carol = [await client.player() for _ in range(3)]
        await client.earn(alice, 2)  # alice reaches 2 before bob: she ranks first on the tie
        await client.earn(bob, 2)
        await client.earn(carol, 3)
        before = await client.board()

    first_pid = server.pid
    assert server.stop() in (0, -signal.SIGTERM), server.output
    assert any(
        json.loads(line).get("event") == "app.stopped"
        for line in server.stderr.splitlines()
        if line.startswith("{")
    )
    server.start()
    assert server.pid != first_pid

    async with Client(server.base_url) as client:
        after = await client.board()
        relogin = await client.login(bob.username)
        with_old_token = await client.update(alice, await client.ticket(alice))

    assert [e["user_id"] for e in before["entries"]] == [carol.user_id, alice.user_id, bob.user_id]
    assert after["entries"] == before["entries"]
    assert after["epoch"] > before["epoch"]
    assert relogin["access_token"]
    assert with_old_token.status_code == 200, with_old_token.text
    assert with_old_token.json()["new_score"] == 3


async def test_sigkill_mid_run_loses_no_acknowledged_update_and_applies_none_twice(servers: Servers) -> None:
    server = servers.start()
    async with Client(server.base_url) as client:
        players = await asyncio.gather(*(client.player() for _ in range(4)))
        issued = await asyncio.gather(*(client.ticket(player) for player in players for _ in range(40)))
    tickets = list(zip([player for player in players for _ in range(40)], issued, strict=True))

    acknowledged = await _updates_until_killed(server.base_url, tickets, kill=server.kill)

    assert server.returncode == -signal.SIGKILL
    assert 0 < len(acknowledged) < len(tickets), "the kill should land while updates are in flight"
    server.start()
    async with Client(server.base_url) as client:
        board = await client.board()
        scores = {p.user_id: (await client.score(p.user_id))["score"] for p in players}
        resent = await asyncio.gather(*(client.update(player, action) for player, action in tickets))

    assert sum(entry["score"] for entry in board["entries"]) >= len(acknowledged)
    for (player, _), new_score in acknowledged.items():
        assert scores[player.user_id] >= new_score
    outcome = {action: response.status_code for (_, action), response in zip(tickets, resent, strict=True)}
    assert {outcome[action] for _, action in acknowledged} == {409}
    assert set(outcome.values()) <= {200, 409}
    async with Client(server.base_url) as client:
        final = {p.user_id: (await client.score(p.user_id))["score"] for p in players}
    assert final == dict.fromkeys(final, 40)  # every ticket applied exactly once in the end


async def _updates_until_killed(
    base_url: str, tickets: list[tuple[Player, str]], kill: Callable[[], object]
) -> dict[tuple[Player, str], int]:
    """Send every update (32 at a time); SIGKILL the server once a quarter have been acknowledged.
    Returns the 200s: (player, action_id) -> new_score."""
    acknowledged: dict[tuple[Player, str], int] = {}
    killed = asyncio.Event()
    gate = asyncio.Semaphore(32)
    failures: Counter[str] = Counter()

    async def send(client: Client, player: Player, action_id: str) -> None:
        async with gate:
            try:
                response = await client.update(player, action_id)
            except httpx.TransportError as error:
                failures[type(error).__name__] += 1
                return
        if response.status_code != 200:  # before the kill, every answer must be a success
            failures[f"HTTP {response.status_code}: {response.text}"] += 1
            return
        acknowledged[(player, action_id)] = response.json()["new_score"]
        if len(acknowledged) >= len(tickets) // 4 and not killed.is_set():
            killed.set()
            kill()

    async with Client(base_url, max_connections=32) as client:
        await asyncio.gather(*(send(client, player, action) for player, action in tickets))
    assert killed.is_set(), f"all updates finished before the kill; failures {failures}"
    assert not [failure for failure in failures if failure.startswith("HTTP")], failures
    return acknowledged


def test_server_that_cannot_start_fails_fast_with_its_output(servers: Servers) -> None:
    server = servers.create(env={"SCOREBOARD_ACCESS_TOKEN_TTL_SECONDS": "abc"})

    with pytest.raises(ServerFailed, match="SCOREBOARD_ACCESS_TOKEN_TTL_SECONDS") as failure:
        server.start(timeout=10)

    assert "exited with 2 before it was healthy" in str(failure.value)
    assert not server.running


async def test_a_stopping_server_closes_live_clients_with_going_away_and_ends_sse_streams(
    servers: Servers,
) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    server = servers.start()
    subscribe = json.dumps({"type": "subscribe", "channel": "scoreboard_updates"})
    async with (
        connect(f"ws://127.0.0.1:{server.port}/ws") as ws,
        httpx.AsyncClient(base_url=server.base_url, timeout=10) as http,
        http.stream("GET", "/api/leaderboard/stream") as stream,
    ):
        await ws.send(subscribe)
        assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "snapshot"
        lines = stream.aiter_lines()
        while not (await anext(lines)).startswith("id: "):  # the snapshot event
            pass

        await asyncio.to_thread(server.stop)  # SIGTERM, as Kubernetes or systemd would send

        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
        rest = [line async for line in lines]  # the stream ends instead of hanging
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1001
    assert all(not line.startswith("id: ") for line in rest)
