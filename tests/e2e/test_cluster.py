"""Many instances behind NGINX over TLS: one gapless board sequence for every client, failover that
loses nothing, and the roles deployed as separate processes.

Real processes throughout: NGINX running the shipped `deploy/nginx/scoreboard.conf`, three
`scoreboard serve` instances on a private PostgreSQL database and Redis prefix (and RabbitMQ as the
broker in one run), `wss://` clients and HTTPS players on the test's side.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from tests.e2e.cluster import (
    Cluster,
    Player,
    caught_up,
    cluster,
    complete_action,
    join,
    watching,
    ws_connections,
)
from tests.e2e.server import Servers

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]
PLAYERS = 10  # all of them in the top 10, so every update changes it and is broadcast


def entries(top: list[dict[str, object]]) -> list[tuple[object, object]]:
    return [(entry["user_id"], entry["score"]) for entry in top]


async def play(http: httpx.AsyncClient, players: list[Player], actions_each: int) -> None:
    async def one(player: Player) -> None:
        for _ in range(actions_each):
            await complete_action(http, player)

    await asyncio.gather(*(one(player) for player in players))


async def settle(cluster: Cluster, http: httpx.AsyncClient, watchers: list) -> dict[str, object]:  # type: ignore[type-arg]
    board: dict[str, object] = (await http.get("/api/leaderboard")).json()
    await caught_up(watchers, int(board["epoch"]), int(board["seq"]))  # type: ignore[call-overload]
    return board


@pytest.mark.parametrize("broker", ["redis", "rabbitmq"])
async def test_every_wss_client_sees_one_gapless_sequence_and_the_board_ends_at_the_stores_truth(
    servers: Servers, tmp_path: Path, broker: str
) -> None:
    updates, clients = 1000, 100
    async with cluster(servers, tmp_path, broker) as c, c.http() as http:
        players = [await join(http) for _ in range(PLAYERS)]
        async with watching(c, clients) as watchers:
            spread = [await ws_connections(server) for server in c.instances]
            await play(http, players, updates // PLAYERS)
            board = await settle(c, http, watchers)
        truth = await c.store_top()

    assert all(count > 0 for count in spread), f"NGINX spread the clients over every instance: {spread}"
    assert sum(spread) == clients
    assert all(w.reconnects == 0 for w in watchers)
    assert all(w.updates_are_gapless() for w in watchers), "every client: seq +1 each time, no repeats"
    assert {len(w.boards) for w in watchers} == {updates + 1}, "a snapshot, then one update per score change"
    seen: dict[tuple[int, int], str] = {}
    for watcher in watchers:
        for _, epoch, seq, top in watcher.boards:
            assert seen.setdefault((epoch, seq), top) == top, "every client got the same board for a seq"
    assert entries(json.loads(watchers[0].boards[-1][3])) == truth
    assert entries(board["entries"]) == truth  # type: ignore[arg-type]
    assert sum(score for _, score in truth) == updates


async def test_killing_an_instance_mid_run_loses_no_acknowledged_update_and_its_clients_recover(
    servers: Servers, tmp_path: Path
) -> None:
    actions_each = 40
    async with cluster(servers, tmp_path) as c, c.http() as http:
        players = [await join(http) for _ in range(PLAYERS)]
        async with watching(c, 60) as watchers:
            game = asyncio.create_task(play(http, players, actions_each))
            while sum(p.acknowledged for p in players) < actions_each * PLAYERS // 4:
                await asyncio.sleep(0.02)
            c.instances[1].kill()
            await game
            board = await settle(c, http, watchers)
            still_answering = (await http.get("/healthz")).status_code
        truth = dict(await c.store_top())

    assert still_answering == 200
    assert all(p.acknowledged == actions_each for p in players)  # NGINX kept answering; retries got through
    assert {p.user_id: actions_each for p in players} == truth, (
        "every acknowledged action counted exactly once"
    )
    assert entries(board["entries"]) == list(truth.items())  # type: ignore[arg-type]
    assert any(w.reconnects > 0 for w in watchers), "the killed instance's clients had to reconnect"
    for watcher in watchers:
        seqs = [(epoch, seq) for _, epoch, seq, _ in watcher.boards]
        assert seqs == sorted(set(seqs)), "never an older or repeated board, across the reconnect"
        assert entries(json.loads(watcher.boards[-1][3])) == list(truth.items())


async def test_api_realtime_and_relay_as_separate_processes_behind_nginx(
    servers: Servers, tmp_path: Path
) -> None:
    updates, clients = 200, 30
    roles = ("api", "api", "realtime", "relay")
    async with cluster(servers, tmp_path, roles=roles) as c, c.http() as http:
        players = [await join(http) for _ in range(PLAYERS)]
        async with watching(c, clients) as watchers:
            spread = [await ws_connections(server) for server in c.instances]
            await play(http, players, updates // PLAYERS)
            board = await settle(c, http, watchers)
        truth = await c.store_top()

    assert spread == [0, 0, clients, 0], "only the realtime process holds WebSockets"
    assert all(w.updates_are_gapless() for w in watchers)
    assert {len(w.boards) for w in watchers} == {updates + 1}
    assert entries(board["entries"]) == truth
    assert sum(score for _, score in truth) == updates
