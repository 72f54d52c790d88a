"""`/ws` under abuse, against a real `scoreboard serve` with small limits (OWASP API4:2023 unrestricted
resource consumption, API8:2023 security misconfiguration — the Origin allowlist).

Covered elsewhere and not repeated here: same-origin and no-Origin handshakes, the private board,
bad messages and the 30-messages flood budget (tests/e2e/test_live.py), and a slow reader being
conflated while a healthy client keeps its latency (test_live.py, `stalled_subscriber`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect
from websockets.datastructures import Headers
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin

from scoreboard.realtime.gate import ConnectionGate, Refusal
from tests.e2e.live_clients import (
    RECEIVE_SECONDS,
    SUBSCRIBE,
    Game,
    Player,
    Watcher,
    closed_by_server,
    masked_text_frame,
    receive_exactly,
    watching,
    ws_url,
)
from tests.e2e.server import HOST, Server, Servers

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]

PER_ADDRESS, TOTAL = 3, 5
PING_INTERVAL, PING_TIMEOUT, IDLE = 0.5, 1.0, 1.5
ALLOWED_ORIGIN = "https://scores.example"
GUARDED = {
    "SCOREBOARD_ACTION_POLICY": "open",
    "SCOREBOARD_WS_MAX_CONNECTIONS": str(TOTAL),
    "SCOREBOARD_WS_MAX_CONNECTIONS_PER_ADDRESS": str(PER_ADDRESS),
    "SCOREBOARD_WS_PING_INTERVAL_SECONDS": str(PING_INTERVAL),
    "SCOREBOARD_WS_PING_TIMEOUT_SECONDS": str(PING_TIMEOUT),
    "SCOREBOARD_WS_IDLE_TIMEOUT_SECONDS": str(IDLE),
    "SCOREBOARD_ALLOWED_ORIGINS": ALLOWED_ORIGIN,
    # The test plays many addresses by sending X-Forwarded-For, as a proxy on 127.0.0.1 would.
    "SCOREBOARD_TRUSTED_PROXIES": "127.0.0.1",
}
# Generous bounds for a shared 2-core machine: what matters is that the server acts at all.
DROP_WITHIN_SECONDS = 6.0
OPCODE_CLOSE, OPCODE_PING = 0x8, 0x9


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    pool = Servers(tmp_path_factory.mktemp("ws"))
    try:
        yield pool.start("guarded", env=GUARDED)
    finally:
        pool.stop_all()


@pytest.fixture(autouse=True)
async def all_connections_released(server: Server) -> AsyncIterator[None]:
    """Each test starts with no connection held: the server releases a slot when it notices the
    close, which may be just after the client has moved on."""
    yield
    deadline = time.monotonic() + RECEIVE_SECONDS
    while await metric(server, "scoreboard_realtime_connections", transport="ws") > 0:
        assert time.monotonic() < deadline, "a connection was never released"
        await asyncio.sleep(0.05)


@pytest.fixture
async def game(server: Server) -> AsyncIterator[Game]:
    players = Game(server)
    try:
        yield players
    finally:
        await players.http.aclose()


async def metric(server: Server, name: str, **labels: str) -> float:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10.0) as http:
        text = (await http.get("/metrics")).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return 0.0


async def refusal(server: Server, **options: Any) -> tuple[int, Headers, dict[str, Any]]:
    """Status, headers and problem body of a refused handshake (fails if it is accepted)."""
    with pytest.raises(InvalidStatus) as refused:
        async with connect(ws_url(server), open_timeout=RECEIVE_SECONDS, **options):
            pass
    response = refused.value.response
    assert response.headers["content-type"] == "application/problem+json"
    return response.status_code, response.headers, json.loads(response.body or b"{}")


@contextlib.asynccontextmanager
async def holding(server: Server, addresses: list[str | None]) -> AsyncIterator[list[Watcher]]:
    """Subscribed watchers held open together, one per entry (None: the test's own address)."""
    async with contextlib.AsyncExitStack() as stack:
        held = []
        for address in addresses:
            options = forwarded_for(address) if address else {}
            watcher = await stack.enter_async_context(watching(server, **options))
            assert (await watcher.next())["type"] == "snapshot"
            held.append(watcher)
        yield held


def forwarded_for(address: str) -> dict[str, Any]:
    """Handshake options for a client at `address` behind the trusted (loopback) proxy."""
    return {"additional_headers": {"X-Forwarded-For": address}}


# --- connection caps -------------------------------------------------------------------------------


async def test_one_address_may_hold_only_its_share_of_connections(server: Server) -> None:
    refused_before = await metric(
        server, "scoreboard_realtime_refused_connections_total", reason="address_limit"
    )
    crowd = "203.0.113.50"
    async with holding(server, [crowd] * PER_ADDRESS) as held:
        status, headers, problem = await refusal(server, **forwarded_for(crowd))
        assert (status, problem["code"], problem["status"]) == (429, "too_many_connections", 429)
        assert int(headers["Retry-After"]) > 0
        async with watching(server, **forwarded_for("198.51.100.7")) as elsewhere:
            assert (await elsewhere.next())["type"] == "snapshot"  # another address is not affected
        await held[0].ws.close()
        async with watching(server, **forwarded_for(crowd)) as again:  # the freed slot is usable
            assert (await again.next())["type"] == "snapshot"

    after = await metric(server, "scoreboard_realtime_refused_connections_total", reason="address_limit")
    assert after == refused_before + 1


async def test_a_loopback_peer_counts_only_towards_the_total(server: Server) -> None:
    """A local proxy not listed as trusted, or a load test: every client shows as 127.0.0.1."""
    async with holding(server, [None] * (PER_ADDRESS + 1)) as held:
        assert len(held) == PER_ADDRESS + 1


async def test_the_server_holds_at_most_its_total_of_connections(server: Server) -> None:
    addresses: list[str | None] = [f"192.0.2.{i}" for i in range(1, TOTAL + 1)]
    async with holding(server, addresses):
        status, headers, problem = await refusal(server, **forwarded_for("192.0.2.200"))

    assert (status, problem["code"]) == (503, "too_many_connections")
    assert int(headers["Retry-After"]) > 0


@pytest.mark.parametrize(
    ("total", "per_address", "opened", "refusal_reason"),
    [(10, 2, ["a", "a", "a"], Refusal.ADDRESS_LIMIT), (3, 2, ["a", "b", "c", "d"], Refusal.TOTAL_LIMIT)],
)
def test_the_gate_refuses_the_first_connection_over_a_cap(
    total: int, per_address: int, opened: list[str], refusal_reason: Refusal
) -> None:
    gate = ConnectionGate(total, per_address)
    answers = [gate.admit(address) for address in opened]

    assert answers == [None] * (len(opened) - 1) + [refusal_reason]
    gate.release(opened[0])
    assert gate.admit(opened[-1]) is None
    assert gate.open == len(opened) - 1


def test_the_gate_holds_loopback_peers_to_the_total_only() -> None:
    gate = ConnectionGate(total=4, per_address=2)

    answers = [gate.admit(address) for address in ["127.0.0.1"] * 3 + ["::1", "127.0.0.1"]]

    assert answers == [None, None, None, None, Refusal.TOTAL_LIMIT]


# --- Origin allowlist ------------------------------------------------------------------------------


async def test_a_listed_origin_is_accepted_and_another_refused_with_a_problem(server: Server) -> None:
    refused_before = await metric(server, "scoreboard_realtime_refused_connections_total", reason="origin")

    async with watching(server, origin=Origin(ALLOWED_ORIGIN)) as listed:
        assert (await listed.next())["type"] == "snapshot"
    status, _, problem = await refusal(server, origin=Origin("https://scores.example.evil.test"))

    assert (status, problem["code"]) == (403, "forbidden")
    after = await metric(server, "scoreboard_realtime_refused_connections_total", reason="origin")
    assert after == refused_before + 1


# --- frames, pings, idling, flooding ---------------------------------------------------------------


async def test_a_frame_over_64_kib_closes_the_connection_with_1009(server: Server) -> None:
    async with watching(server) as watcher:
        await watcher.next()
        await watcher.ws.send("x" * (64 * 1024 + 1))
        closed = await closed_by_server(watcher)

    assert closed.rcvd is not None
    assert closed.rcvd.code == 1009


def silent_subscriber(server: Server) -> socket.socket:
    """A raw `/ws` client that subscribes and reads its snapshot, and will never answer a ping."""
    sock = socket.create_connection((HOST, server.port), timeout=DROP_WITHIN_SECONDS)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET /ws HTTP/1.1\r\nHost: {HOST}:{server.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    response = b""
    while not response.endswith(b"\r\n\r\n"):
        response += receive_exactly(sock, 1)
    assert response.startswith(b"HTTP/1.1 101 "), response
    sock.sendall(masked_text_frame(json.dumps(SUBSCRIBE).encode()))
    return sock


def frames_until_closed(sock: socket.socket) -> list[tuple[int, bytes]]:
    """(opcode, payload) of every server frame until the server closes the connection."""
    frames = []
    while head := sock.recv(2):
        if len(head) == 1:
            head += receive_exactly(sock, 1)
        size = head[1] & 0x7F
        if size == 126:
            size = int.from_bytes(receive_exactly(sock, 2), "big")
        elif size == 127:
            size = int.from_bytes(receive_exactly(sock, 8), "big")
        frames.append((head[0] & 0x0F, receive_exactly(sock, size) if size else b""))
        if frames[-1][0] == OPCODE_CLOSE:
            break
    return frames


async def test_a_client_that_never_answers_pings_is_dropped_while_one_that_does_stays(
    server: Server, game: Game
) -> None:
    leader: Player = await game.join()
    async with watching(server) as healthy:
        await healthy.next()
        started = time.monotonic()
        with silent_subscriber(server) as silent:
            frames = await asyncio.to_thread(frames_until_closed, silent)
        dropped_after = time.monotonic() - started

        await game.score(leader)
        assert (await healthy.next())["type"] == "update"  # answered every ping: still here

    opcodes = [opcode for opcode, _ in frames]
    assert OPCODE_PING in opcodes
    assert dropped_after < DROP_WITHIN_SECONDS
    assert opcodes[-1] == OPCODE_CLOSE
    assert int.from_bytes(frames[-1][1][:2], "big") == 1011  # "keepalive ping timeout"


async def test_a_connection_that_never_subscribes_is_closed_after_the_idle_timeout(server: Server) -> None:
    started = time.monotonic()
    async with watching(server, subscribe=False) as idle:
        closed = await closed_by_server(idle)

    assert closed.rcvd is not None
    assert (closed.rcvd.code, closed.rcvd.reason) == (1000, "idle: no subscription")
    assert IDLE <= time.monotonic() - started < IDLE + DROP_WITHIN_SECONDS


async def test_an_unsubscribed_connection_is_closed_after_the_idle_timeout_too(server: Server) -> None:
    async with watching(server) as watcher:
        await watcher.next()
        await watcher.ws.send(json.dumps({**SUBSCRIBE, "type": "unsubscribe"}))
        closed = await closed_by_server(watcher)

    assert closed.rcvd is not None
    assert closed.rcvd.code == 1000


async def test_a_flooding_client_is_closed_with_1008_counted_and_others_keep_their_updates(
    server: Server, game: Game
) -> None:
    leader = await game.join()
    flooding_before = await metric(
        server, "scoreboard_realtime_slow_clients_total", transport="ws", action="flooding"
    )
    async with watching(server) as flooder, watching(server) as bystander:
        await bystander.next()
        for _ in range(40):
            await flooder.ws.send(json.dumps(SUBSCRIBE))
        closed = await closed_by_server(flooder)
        await game.score(leader)
        assert (await bystander.next())["type"] == "update"

    assert closed.rcvd is not None
    assert closed.rcvd.code == 1008
    after = await metric(server, "scoreboard_realtime_slow_clients_total", transport="ws", action="flooding")
    assert after == flooding_before + 1


@pytest.mark.parametrize(
    "channel", ["admin", "", "scoreboard_updates ", "SCOREBOARD_UPDATES", "\u0000", "é" * 500]
)
async def test_subscribing_to_an_unknown_channel_is_an_error_message_not_a_crash(
    server: Server, channel: str
) -> None:
    async with watching(server, subscribe=False) as watcher:
        await watcher.ws.send(json.dumps({"type": "subscribe", "channel": channel}))
        error = await watcher.next()
        await watcher.subscribe()
        snapshot = await watcher.next()

    assert (error["type"], error["code"]) == ("error", "unknown_channel")
    assert snapshot["type"] == "snapshot"  # the same connection still works
    assert "request.crashed" not in server.stderr
