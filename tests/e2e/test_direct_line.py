"""The hub's direct writes on the server we ship: uvicorn with `scoreboard serve`'s options.

Runs uvicorn in the test's own event loop, so the test can look at the hub's mailboxes while a real
client (which offers permessage-deflate, as browsers do) reads the frames written straight to its
socket."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from websockets.asyncio.client import ClientConnection, connect

from scoreboard.app import create_app
from scoreboard.config import Settings
from scoreboard.domain.model import Board, RankedEntry
from scoreboard.realtime.hub import Hub
from scoreboard.realtime.messages import encode_update
from scoreboard.server_options import UVICORN_OPTIONS
from tests.e2e.server import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(30)]
SUBSCRIBE = json.dumps({"type": "subscribe", "channel": "scoreboard_updates"})


@dataclass
class Served:
    hub: Hub
    url: str


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/scoreboard.db", log_format="json")
    app = create_app(settings)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, **UVICORN_OPTIONS))
    serving = asyncio.create_task(server.serve())
    while not server.started:
        assert not serving.done(), "uvicorn did not start"
        await asyncio.sleep(0.02)
    try:
        yield Served(app.state.hub, f"ws://127.0.0.1:{port}/ws")
    finally:
        server.should_exit = True
        await serving


async def received(ws: ClientConnection) -> dict[str, object]:
    message = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert isinstance(message, dict)
    return message


async def test_subscribers_get_frames_written_straight_to_their_socket_and_read_them_intact(
    served: Served,
) -> None:
    async with connect(served.url, compression="deflate") as ws:
        assert ws.response is not None
        assert "Sec-WebSocket-Extensions" not in ws.response.headers  # compression declined
        await ws.send(SUBSCRIBE)
        snapshot = await received(ws)
        assert snapshot["type"] == "snapshot"
        (mailbox,) = served.hub._subscribers
        assert mailbox.line is not None
        assert mailbox.line.ready()

        epoch, seq = served.hub.board.epoch, served.hub.board.seq
        for step in (1, 2, 3):
            entry = RankedEntry(1, "u-1", "Ünïcode név " * 30, step)  # a frame over 125 bytes
            served.hub.on_message(encode_update(Board(epoch, seq + step, (entry,))))
        updates = [await received(ws) for _ in range(3)]
        assert [update["seq"] for update in updates] == [seq + 1, seq + 2, seq + 3]
        assert not mailbox.frames  # nothing went through the queue
