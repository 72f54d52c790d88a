"""Clients for the live board over real sockets: players over HTTP, `/ws` watchers (and one that
stops reading, by hand over a raw socket), and an SSE reader."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.e2e.server import HOST, Server

PASSWORD = "correct horse battery staple"
SUBSCRIBE = {"type": "subscribe", "channel": "scoreboard_updates"}
RECEIVE_SECONDS = 5.0
QUIET_SECONDS = 0.5


# --- players over HTTP -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Player:
    user_id: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class Game:
    """Players and points over the real HTTP API. Under the open policy any new action id scores 1."""

    def __init__(self, server: Server) -> None:
        self.http = httpx.AsyncClient(base_url=server.base_url, timeout=10.0)

    async def join(self) -> Player:
        """A new player with a long display name (so each board frame is large)."""
        username = f"live_{uuid.uuid4().hex[:12]}"
        display_name = f"{username} {'~' * 64}"[:64]
        body = {"username": username, "password": PASSWORD, "display_name": display_name}
        registered = await self.http.post("/api/auth/register", json=body)
        assert registered.status_code == 201, registered.text
        login = await self.http.post("/api/auth/login", json={"username": username, "password": PASSWORD})
        assert login.status_code == 200, login.text
        self.http.cookies.clear()  # every later call says who it is
        return Player(registered.json()["user_id"], login.json()["access_token"])

    async def score(self, player: Player, times: int = 1) -> float:
        """Add `times` points, one request at a time; when the last 200 arrived (monotonic)."""
        for _ in range(times):
            body = {"user_id": player.user_id, "action_id": str(uuid.uuid4())}
            response = await self.http.post("/api/score/update", json=body, headers=player.auth)
            assert response.status_code == 200, response.text
        return time.monotonic()

    async def score_concurrently(self, player: Player, times: int, workers: int = 10) -> float:
        shares = [times // workers + (i < times % workers) for i in range(workers)]
        done = await asyncio.gather(*(self.score(player, share) for share in shares if share))
        return max(done)

    async def board(self) -> dict[str, Any]:
        response = await self.http.get("/api/leaderboard")
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def rank(self, player: Player) -> int | None:
        response = await self.http.get(f"/api/users/{player.user_id}/score")
        assert response.status_code == 200, response.text
        rank: int | None = response.json()["rank"]
        return rank

    async def slow_clients(self, action: str) -> float:
        response = await self.http.get("/metrics")
        assert response.status_code == 200, response.text
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                if sample.name == "scoreboard_realtime_slow_clients_total" and sample.labels == {
                    "transport": "ws",
                    "action": action,
                }:
                    return float(sample.value)
        return 0.0


# --- WebSocket clients -----------------------------------------------------------------------------


def ws_url(server: Server) -> str:
    return f"ws://{HOST}:{server.port}/ws"


class Watcher:
    """One `/ws` connection, speaking JSON."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    async def subscribe(self, since: tuple[int, int] | None = None) -> None:
        message: dict[str, Any] = dict(SUBSCRIBE)
        if since is not None:
            message["since"] = {"epoch": since[0], "seq": since[1]}
        await self.ws.send(json.dumps(message))

    async def next(self, timeout: float = RECEIVE_SECONDS) -> dict[str, Any]:
        message: dict[str, Any] = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
        return message

    async def quiet(self, seconds: float = QUIET_SECONDS) -> list[dict[str, Any]]:
        """Whatever arrives within `seconds` (a test that expects silence asserts it is empty)."""
        received = []
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                while True:
                    received.append(json.loads(await self.ws.recv()))
        return received


@contextlib.asynccontextmanager
async def watching(
    server: Server,
    since: tuple[int, int] | None = None,
    subscribe: bool = True,
    **options: Any,
) -> AsyncIterator[Watcher]:
    async with connect(ws_url(server), open_timeout=RECEIVE_SECONDS, **options) as ws:
        watcher = Watcher(ws)
        if subscribe:
            await watcher.subscribe(since)
        yield watcher


async def refused_status(server: Server, **options: Any) -> int:
    """The HTTP status of a refused `/ws` handshake (fails if the handshake is accepted)."""
    with pytest.raises(InvalidStatus) as refused:
        async with connect(ws_url(server), open_timeout=RECEIVE_SECONDS, **options):
            pass
    return int(refused.value.response.status_code)


async def closed_by_server(watcher: Watcher) -> ConnectionClosed:
    """Read until the server closes the connection (fails by timeout if it never does)."""
    try:
        while True:
            await watcher.next()
    except ConnectionClosed as closed:
        return closed


def ids(frame: dict[str, Any]) -> list[str]:
    return [entry["user_id"] for entry in frame["top"]]


def score_of(frame: dict[str, Any], player: Player) -> int:
    return int(next(entry["score"] for entry in frame["top"] if entry["user_id"] == player.user_id))


# --- a client that stops reading, by hand over a raw socket -----------------------------------------


def masked_text_frame(payload: bytes) -> bytes:
    """A client text frame (clients must mask); payloads here are under 126 bytes."""
    assert len(payload) < 126
    mask = os.urandom(4)
    return bytes([0x81, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def receive_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, "the server closed the connection"
        data += chunk
    return data


def read_frame(sock: socket.socket) -> bytes:
    """One unmasked server frame's payload."""
    _, second = receive_exactly(sock, 2)
    size = second & 0x7F
    if size == 126:
        size = int.from_bytes(receive_exactly(sock, 2), "big")
    elif size == 127:
        size = int.from_bytes(receive_exactly(sock, 8), "big")
    return receive_exactly(sock, size)


@contextlib.contextmanager
def stalled_subscriber(server: Server) -> Iterator[dict[str, Any]]:
    """A `/ws` client that subscribes, reads its snapshot, then never reads again.

    It advertises a small receive buffer and segment size: the server's kernel send buffer is
    autotuned from the peer's segment size (megabytes on loopback otherwise), and only once it and
    the transport's buffer are full does the server's writer block and the mailbox fill."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536)
        sock.settimeout(RECEIVE_SECONDS)
        sock.connect((HOST, server.port))
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(
            f"GET /ws HTTP/1.1\r\nHost: {HOST}:{server.port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        response = b""
        while not response.endswith(b"\r\n\r\n"):
            response += receive_exactly(sock, 1)
        assert response.startswith(b"HTTP/1.1 101 "), response
        sock.sendall(masked_text_frame(json.dumps(SUBSCRIBE).encode()))
        snapshot: dict[str, Any] = json.loads(read_frame(sock))
        assert snapshot["type"] == "snapshot"
        yield snapshot
    finally:
        sock.close()


# --- Server-Sent Events ----------------------------------------------------------------------------


class EventStream:
    """Reads `/api/leaderboard/stream` event by event; comment lines (heartbeats) are skipped."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()

    async def next(self, timeout: float = RECEIVE_SECONDS) -> dict[str, str]:
        fields: dict[str, str] = {}
        async with asyncio.timeout(timeout):
            async for line in self._lines:
                if not line:
                    if fields:
                        return fields
                elif not line.startswith(":"):
                    name, _, value = line.partition(":")
                    assert name not in fields, f"repeated field {name!r}"
                    fields[name] = value.removeprefix(" ")
        raise AssertionError(f"the stream ended; last fields {fields}")


@contextlib.asynccontextmanager
async def streaming(server: Server, last_event_id: str | None = None) -> AsyncIterator[EventStream]:
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    async with (
        httpx.AsyncClient(base_url=server.base_url, timeout=10.0) as http,
        http.stream("GET", "/api/leaderboard/stream", headers=headers) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        yield EventStream(response)
