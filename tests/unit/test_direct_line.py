"""Pre-framed WebSocket writes: the frame bytes, and a mailbox that writes directly only when that
cannot reorder anything."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

import pytest
from websockets.frames import Frame as WsFrame
from websockets.frames import Opcode
from websockets.protocol import State
from websockets.streams import StreamReader

from scoreboard.domain.model import Board, RankedEntry
from scoreboard.observability.metrics import Metrics
from scoreboard.realtime.direct import DirectLine, text_frame
from scoreboard.realtime.hub import Hub, Mailbox
from scoreboard.realtime.messages import encode_update


def parsed(data: bytes) -> WsFrame:
    """`data` read back by the websockets library's own frame parser (as a client would)."""
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    parser = WsFrame.parse(reader.read_exact, mask=False, max_size=None)
    try:
        next(parser)
    except StopIteration as done:
        frame: WsFrame = done.value
        return frame
    raise AssertionError("incomplete frame")


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 70000])
def test_text_frame_is_what_websockets_parses_as_one_final_unmasked_text_frame(size: int) -> None:
    payload = b"x" * size
    frame = parsed(text_frame(payload))
    assert frame.opcode is Opcode.TEXT
    assert frame.fin
    assert frame.data == payload
    assert text_frame(payload) == frame.serialize(mask=False)


@dataclass
class FakeConn:
    state: State = State.OPEN
    extensions: list[object] = field(default_factory=list)


@dataclass
class FakeTransport:
    written: list[bytes] = field(default_factory=list)
    closing: bool = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def is_closing(self) -> bool:
        return self.closing


@dataclass
class FakeProtocol:
    """The parts of uvicorn's websockets-sansio protocol that DirectLine reads."""

    writable: asyncio.Event = field(default_factory=asyncio.Event)
    close_sent: bool = False
    conn: FakeConn = field(default_factory=FakeConn)
    transport: FakeTransport = field(default_factory=FakeTransport)


def update(seq: int) -> bytes:
    return encode_update(Board(1, seq, (RankedEntry(1, "u-1", "One", seq),)))


def subscribed_on(protocol: FakeProtocol) -> tuple[Hub, Mailbox]:
    hub = Hub(Metrics())
    hub.reset(Board(1, 0, ()))
    mailbox = Mailbox(hub, "ws", line=DirectLine(protocol))
    hub.subscribe(mailbox)
    return hub, mailbox


def seqs(written: list[bytes]) -> list[int]:
    return [json.loads(parsed(frame).data)["seq"] for frame in written]


async def test_a_healthy_idle_subscriber_is_written_at_once_without_queueing() -> None:
    protocol = FakeProtocol()
    protocol.writable.set()
    hub, mailbox = subscribed_on(protocol)
    hub.on_message(update(1))
    hub.on_message(update(2))
    assert seqs(protocol.transport.written) == [0, 1, 2]  # snapshot, then both updates
    assert not mailbox.frames


async def test_a_socket_pushing_back_queues_and_later_frames_wait_behind_the_backlog() -> None:
    protocol = FakeProtocol()
    protocol.writable.set()
    hub, mailbox = subscribed_on(protocol)
    protocol.writable.clear()  # the transport paused writing
    hub.on_message(update(1))
    protocol.writable.set()
    hub.on_message(update(2))  # writable again, but seq 1 is still queued: must not overtake it
    assert seqs(protocol.transport.written) == [0]
    assert [frame.seq for frame in mailbox.frames] == [1, 2]


async def test_a_frame_in_flight_makes_newer_frames_queue() -> None:
    protocol = FakeProtocol()
    protocol.writable.set()
    hub, mailbox = subscribed_on(protocol)
    mailbox.busy = True  # the writer task is sending an older frame through ASGI
    hub.on_message(update(1))
    assert seqs(protocol.transport.written) == [0]
    assert [frame.seq for frame in mailbox.frames] == [1]


@pytest.mark.parametrize("broken", ["closing", "close_sent", "closed_state"])
async def test_a_closing_connection_is_never_written_directly(broken: str) -> None:
    protocol = FakeProtocol()
    protocol.writable.set()
    protocol.transport.closing = broken == "closing"
    protocol.close_sent = broken == "close_sent"
    protocol.conn.state = State.CLOSED if broken == "closed_state" else State.OPEN
    _, mailbox = subscribed_on(protocol)
    assert protocol.transport.written == []
    assert len(mailbox.frames) == 1


def test_no_direct_line_without_uvicorns_websocket_protocol() -> None:
    async def send(message: object) -> None:
        return None

    assert DirectLine.reach(send) is None
