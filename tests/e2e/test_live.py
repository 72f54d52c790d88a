"""The live board over real sockets: `/ws`, the SSE stream and the page, against `scoreboard serve`.

Two servers serve the whole module (open action policy, rate limits off): a public one and one with
PUBLIC_SCOREBOARD=false. Tests share the public board, so each reads the current epoch and seq
from its own snapshot and makes its own changes: `leader` holds a head start that keeps it in the top
10, so each of its points is one update.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.typing import Origin

from tests.e2e.live_clients import (
    RECEIVE_SECONDS,
    SUBSCRIBE,
    Game,
    Player,
    closed_by_server,
    ids,
    refused_status,
    score_of,
    stalled_subscriber,
    streaming,
    watching,
)
from tests.e2e.server import Server, Servers

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]

OPEN = {"SCOREBOARD_ACTION_POLICY": "open"}
REPOSITORY = Path(__file__).resolve().parents[2]
LEADER_HEAD_START = 5
MAX_MESSAGE_BYTES = 4096
FLOOD_LIMIT = 30  # messages per 10 s window


# --- servers ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    servers = Servers(tmp_path_factory.mktemp("live"))
    try:
        yield servers
    finally:
        servers.stop_all()


@pytest.fixture(scope="module")
def server(pool: Servers) -> Server:
    return pool.start("public", env=OPEN)


@pytest.fixture(scope="module")
def private_server(pool: Servers) -> Server:
    return pool.start("private", env={**OPEN, "SCOREBOARD_PUBLIC_SCOREBOARD": "false"})


@pytest.fixture
async def game(server: Server) -> AsyncIterator[Game]:
    players = Game(server)
    try:
        yield players
    finally:
        await players.http.aclose()


@pytest.fixture(scope="module")
def roster() -> dict[str, Player]:
    return {}


@pytest.fixture
async def leader(game: Game, roster: dict[str, Player]) -> Player:
    """The module's front-runner: always in the top 10, so each of its points is an update."""
    if "leader" not in roster:
        roster["leader"] = await game.join()
        await game.score(roster["leader"], LEADER_HEAD_START)
    return roster["leader"]


# --- subscribing and updates -----------------------------------------------------------------------


async def test_two_subscribers_get_the_same_snapshot_and_the_same_updates(
    server: Server, game: Game, leader: Player
) -> None:
    async with watching(server) as first, watching(server) as second:
        snapshot = await first.next()
        assert snapshot == await second.next()
        assert snapshot["type"] == "snapshot"
        assert snapshot["channel"] == "scoreboard_updates"
        assert leader.user_id in ids(snapshot)

        await game.score(leader, 3)
        updates = [await first.next() for _ in range(3)]
        assert updates == [await second.next() for _ in range(3)]
        assert [update["type"] for update in updates] == ["update"] * 3
        scores = [score_of(update, leader) for update in updates]
        assert scores == [score_of(snapshot, leader) + n for n in (1, 2, 3)]
        assert await first.quiet() == []


async def test_snapshot_matches_the_leaderboard_api(server: Server, game: Game, leader: Player) -> None:
    async with watching(server) as watcher:
        snapshot = await watcher.next()
    board = await game.board()
    assert (snapshot["epoch"], snapshot["seq"]) == (board["epoch"], board["seq"])
    assert snapshot["top"] == board["entries"][:10]
    assert [entry["rank"] for entry in snapshot["top"]] == list(range(1, len(snapshot["top"]) + 1))


async def test_a_score_change_outside_the_top_ten_sends_nothing_while_one_inside_does(
    server: Server, game: Game
) -> None:
    top_ten = await asyncio.gather(*(game.join() for _ in range(10)))
    outsider = await game.join()
    await asyncio.gather(*(game.score(player, 2) for player in top_ten))

    async with watching(server) as watcher:
        snapshot = await watcher.next()
        await game.score(outsider)
        rank = await game.rank(outsider)
        assert rank is not None
        assert rank > 10
        assert await watcher.quiet() == []
        assert (await game.board())["seq"] == snapshot["seq"]

        inside = next(p for p in top_ten if p.user_id in ids(snapshot))
        await game.score(inside)
        update = await watcher.next()
        assert update["type"] == "update"
        assert update["seq"] == snapshot["seq"] + 1
        assert score_of(update, inside) == 3
        assert outsider.user_id not in ids(update)


async def test_seq_rises_by_exactly_one_per_update_within_an_epoch(
    server: Server, game: Game, leader: Player
) -> None:
    async with watching(server) as watcher:
        snapshot = await watcher.next()
        await game.score(leader, 5)
        updates = [await watcher.next() for _ in range(5)]
    assert [update["seq"] for update in updates] == [snapshot["seq"] + n for n in range(1, 6)]
    assert {update["epoch"] for update in updates} == {snapshot["epoch"]}


async def test_reconnecting_with_since_replays_the_missed_updates_in_order(
    server: Server, game: Game, leader: Player
) -> None:
    async with watching(server) as watcher:
        seen = await watcher.next()
    epoch, seq = seen["epoch"], seen["seq"]
    await game.score(leader, 4)  # while away

    async with watching(server, since=(epoch, seq)) as watcher:
        replayed = [await watcher.next() for _ in range(4)]
        assert await watcher.quiet() == []  # no snapshot, nothing twice
    assert [(m["type"], m["epoch"], m["seq"]) for m in replayed] == [
        ("update", epoch, seq + n) for n in range(1, 5)
    ]
    assert [score_of(m, leader) for m in replayed] == [score_of(seen, leader) + n for n in range(1, 5)]


async def test_since_equal_to_the_current_seq_replays_nothing_then_sends_the_next_update(
    server: Server, game: Game, leader: Player
) -> None:
    board = await game.board()
    async with watching(server, since=(board["epoch"], board["seq"])) as watcher:
        assert await watcher.quiet() == []
        await game.score(leader)
        update = await watcher.next()
    assert (update["type"], update["seq"]) == ("update", board["seq"] + 1)


@pytest.mark.parametrize("shift", [(-1, 0), (1, 0), (0, 1000)], ids=["older-epoch", "newer-epoch", "future"])
async def test_a_since_history_cannot_serve_gets_a_snapshot(
    server: Server, game: Game, leader: Player, shift: tuple[int, int]
) -> None:
    board = await game.board()
    since = (board["epoch"] + shift[0], board["seq"] + shift[1])
    async with watching(server, since=since) as watcher:
        answer = await watcher.next()
        assert await watcher.quiet(0.2) == []
    assert (answer["type"], answer["epoch"], answer["seq"]) == ("snapshot", board["epoch"], board["seq"])


# --- who may connect -------------------------------------------------------------------------------


@pytest.mark.parametrize("origin", ["http://evil.example", "http://127.0.0.1:1", "null"])
async def test_a_foreign_origin_is_refused_at_the_handshake(server: Server, origin: str) -> None:
    assert await refused_status(server, origin=Origin(origin)) == 403


@pytest.mark.parametrize("same_origin", [True, False], ids=["same-origin", "no-origin"])
async def test_a_same_origin_or_no_origin_handshake_is_accepted(server: Server, same_origin: bool) -> None:
    origin = Origin(server.base_url) if same_origin else None
    async with watching(server, origin=origin) as watcher:
        assert (await watcher.next())["type"] == "snapshot"


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer not-a-token"}],
    ids=["anonymous", "bad-token"],
)
async def test_a_private_board_refuses_a_viewer_without_a_valid_token(
    private_server: Server, headers: dict[str, str]
) -> None:
    assert await refused_status(private_server, additional_headers=headers) == 403


async def test_a_private_board_accepts_a_bearer_token_on_the_handshake(private_server: Server) -> None:
    players = Game(private_server)
    try:
        viewer = await players.join()
    finally:
        await players.http.aclose()
    async with watching(private_server, additional_headers=viewer.auth) as watcher:
        assert (await watcher.next())["type"] == "snapshot"


# --- bad and abusive clients -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "code"),
    [
        (json.dumps({**SUBSCRIBE, "pad": "x" * MAX_MESSAGE_BYTES}), "message_too_large"),
        (json.dumps({**SUBSCRIBE, "channel": "é" * 2100}, ensure_ascii=False), "message_too_large"),
        ("{not json", "bad_message"),
        (json.dumps(["subscribe"]), "bad_message"),
        (json.dumps({"type": "subscribe"}), "bad_message"),
        (json.dumps({"type": "dance", "channel": "scoreboard_updates"}), "bad_message"),
        (json.dumps({**SUBSCRIBE, "since": {"epoch": 1, "seq": -1}}), "bad_message"),
        (json.dumps({**SUBSCRIBE, "channel": "chat"}), "unknown_channel"),
    ],
    ids=[
        "oversized",
        "oversized-in-bytes-not-characters",
        "not-json",
        "not-an-object",
        "no-channel",
        "unknown-type",
        "negative-since",
        "unknown-channel",
    ],
)
async def test_a_bad_message_gets_an_error_the_connection_stays_open_and_others_are_unaffected(
    server: Server, game: Game, leader: Player, message: str, code: str
) -> None:
    async with watching(server) as sender, watching(server) as bystander:
        await sender.next()
        await bystander.next()

        await sender.ws.send(message)
        error = await sender.next()
        assert error["type"] == "error"
        assert error["code"] == code
        assert error["detail"]

        await game.score(leader)
        assert (await sender.next())["type"] == "update"  # still open and still subscribed
        assert (await bystander.next())["type"] == "update"
        assert await bystander.quiet(0.2) == []


async def test_a_client_within_the_message_budget_stays_connected(
    server: Server, game: Game, leader: Player
) -> None:
    async with watching(server, subscribe=False) as watcher:
        for _ in range(FLOOD_LIMIT):
            await watcher.subscribe()
        await asyncio.sleep(0.2)
        await game.score(leader)
        received: list[dict[str, Any]] = []
        while not received or received[-1]["type"] != "update":
            received.append(await watcher.next())
    assert {message["type"] for message in received[:-1]} == {"snapshot"}


async def test_a_flooding_client_is_disconnected_with_policy_violation(server: Server) -> None:
    async with watching(server, subscribe=False) as watcher:
        with contextlib.suppress(ConnectionClosed):
            for _ in range(FLOOD_LIMIT + 10):
                await watcher.subscribe()
        closed = await closed_by_server(watcher)
    assert closed.rcvd is not None
    assert closed.rcvd.code == 1008


async def test_a_client_that_stops_reading_is_conflated_while_a_healthy_one_keeps_its_latency(
    server: Server, game: Game, leader: Player
) -> None:
    entries = (await game.board())["entries"]
    fillers = await asyncio.gather(*(game.join() for _ in range(10 - min(len(entries), 10))))
    await asyncio.gather(*(game.score(player) for player in fillers))  # a full top 10: large frames
    conflated_before = await game.slow_clients("conflated")

    async with watching(server) as healthy:
        start = await healthy.next()
        arrivals: dict[int, float] = {}

        async def read() -> None:
            while True:
                message = await healthy.next(timeout=30)
                assert message["type"] == "update", "the healthy client was conflated"
                arrivals[message["seq"]] = time.monotonic()

        with stalled_subscriber(server):
            reader = asyncio.create_task(read())
            try:
                last_update = await game.score_concurrently(leader, 300)
                final = (await game.board())["seq"]
                async with asyncio.timeout(RECEIVE_SECONDS):
                    while final not in arrivals and not reader.done():
                        await asyncio.sleep(0.01)
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader
            conflated_after = await game.slow_clients("conflated")

    assert sorted(arrivals) == list(range(start["seq"] + 1, final + 1))
    assert arrivals[final] - last_update < 1.0
    assert conflated_after > conflated_before


# --- Server-Sent Events ----------------------------------------------------------------------------


async def test_sse_events_carry_epoch_and_seq_ids_and_last_event_id_resumes_without_loss(
    server: Server, game: Game, leader: Player
) -> None:
    async with streaming(server) as stream:
        assert await stream.next() == {"retry": "2000"}
        first = await stream.next()
        assert set(first) == {"id", "data"}  # no `event:` field: clients use onmessage
        snapshot = json.loads(first["data"])
        epoch, seq = snapshot["epoch"], snapshot["seq"]
        assert snapshot["type"] == "snapshot"
        assert first["id"] == f"{epoch}:{seq}"

        await game.score(leader, 2)
        live = [await stream.next() for _ in range(2)]
    assert [event["id"] for event in live] == [f"{epoch}:{seq + 1}", f"{epoch}:{seq + 2}"]
    assert [json.loads(event["data"])["seq"] for event in live] == [seq + 1, seq + 2]

    await game.score(leader, 3)  # missed while away
    async with streaming(server, last_event_id=live[-1]["id"]) as stream:
        assert await stream.next() == {"retry": "2000"}
        replayed = [await stream.next() for _ in range(3)]
    assert [event["id"] for event in replayed] == [f"{epoch}:{seq + n}" for n in (3, 4, 5)]
    updates = [json.loads(event["data"]) for event in replayed]
    assert [(u["type"], u["seq"]) for u in updates] == [("update", seq + n) for n in (3, 4, 5)]
    assert [score_of(u, leader) for u in updates] == [score_of(snapshot, leader) + n for n in (3, 4, 5)]


async def test_sse_with_an_unknown_last_event_id_starts_from_a_snapshot(server: Server, game: Game) -> None:
    board = await game.board()
    async with streaming(server, last_event_id=f"{board['epoch'] - 1}:0") as stream:
        await stream.next()  # retry
        first = await stream.next()
    assert json.loads(first["data"])["type"] == "snapshot"
    assert first["id"] == f"{board['epoch']}:{board['seq']}"


async def test_sse_on_a_private_board_needs_a_token(private_server: Server) -> None:
    async with httpx.AsyncClient(base_url=private_server.base_url, timeout=10.0) as http:
        response = await http.get("/api/leaderboard/stream")
    assert response.status_code == 401


# --- the page --------------------------------------------------------------------------------------


async def test_the_page_references_its_script_and_the_script_is_served(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10.0) as http:
        page = await http.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert 'src="/static/app.js"' in page.text

        script = await http.get("/static/app.js")
        assert script.status_code == 200
        assert script.headers["content-type"].startswith("text/javascript")
        assert 'from "/static/scoreboard.js"' in script.text

        sdk = await http.get("/static/scoreboard.js")
        assert sdk.status_code == 200
        assert sdk.headers["content-type"].startswith("text/javascript")
        assert sdk.text == (REPOSITORY / "clients" / "js" / "scoreboard.js").read_text("utf-8")
