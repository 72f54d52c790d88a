"""`GET /ws`: subscribe to the live board over a WebSocket."""

from __future__ import annotations

import asyncio
import contextlib
import time

from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from scoreboard.api.deps import Container
from scoreboard.observability.logging import get_logger
from scoreboard.realtime.access import origin_allowed, viewer
from scoreboard.realtime.direct import DirectLine
from scoreboard.realtime.hub import Hub, Mailbox
from scoreboard.realtime.messages import BadClientMessage, decode_client, encode_error

log = get_logger("scoreboard.realtime")
MAX_MESSAGE_BYTES = 4096
SEND_TIMEOUT_SECONDS = 10.0
FLOOD_MESSAGES, FLOOD_WINDOW_SECONDS = 30, 10.0
POLICY_VIOLATION, TRY_AGAIN_LATER = 1008, 1013


class FloodGuard:
    """Counts a client's messages in a fixed window; too many means abuse."""

    def __init__(self) -> None:
        self._window_start, self._count = time.monotonic(), 0

    def allow(self) -> bool:
        now = time.monotonic()
        if now - self._window_start > FLOOD_WINDOW_SECONDS:
            self._window_start, self._count = now, 0
        self._count += 1
        return self._count <= FLOOD_MESSAGES


async def serve(scope: Scope, receive: Receive, send: Send) -> None:
    """`GET /ws` as a plain ASGI app, so the hub can reach the server's socket through `send`."""
    await live(WebSocket(scope, receive, send), DirectLine.reach(send))


SOCKETS: dict[str, ASGIApp] = {"/ws": serve}


async def live(websocket: WebSocket, line: DirectLine | None = None) -> None:
    """Live board: send `{"type":"subscribe","channel":"scoreboard_updates"}`, receive a snapshot
    (or the missed updates after `since`) and then every change of the top 10."""
    container: Container = websocket.app.state.container
    hub: Hub = websocket.app.state.hub
    if not origin_allowed(websocket.headers, container.settings.allowed_origins):
        await websocket.close(POLICY_VIOLATION, "origin not allowed")
        return
    principal = await viewer(websocket.headers, websocket.cookies, container)
    if principal is None and not container.settings.public_scoreboard:
        await websocket.close(POLICY_VIOLATION, "authentication required")
        return
    await websocket.accept()
    mailbox = Mailbox(hub, "ws", line=line)
    metrics = container.metrics
    metrics.connections.labels("ws").inc()
    writer = asyncio.create_task(_write(websocket, mailbox))
    try:
        await _read(websocket, hub, mailbox)
    finally:
        hub.unsubscribe(mailbox)
        mailbox.close()
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await writer
        metrics.connections.labels("ws").dec()


async def _read(websocket: WebSocket, hub: Hub, mailbox: Mailbox) -> None:
    flood = FloodGuard()
    metrics = hub.metrics
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        if not flood.allow():
            metrics.slow_clients.labels("ws", "flooding").inc()
            log.info("realtime.client_dropped", transport="ws", reason="flooding")
            await websocket.close(POLICY_VIOLATION, "too many messages")
            return
        data = message.get("text") or message.get("bytes") or b""
        if _size(data) > MAX_MESSAGE_BYTES:
            _refuse(mailbox, "message_too_large", f"messages are limited to {MAX_MESSAGE_BYTES} bytes")
            continue
        try:
            request = decode_client(data)
        except BadClientMessage as error:
            _refuse(mailbox, error.code, error.detail)
            continue
        hub.unsubscribe(mailbox)
        if request.type == "subscribe":
            since = (request.since.epoch, request.since.seq) if request.since else None
            hub.subscribe(mailbox, since)


def _size(data: str | bytes) -> int:
    """The size on the wire: a text frame's UTF-8 bytes, not its characters."""
    return len(data.encode()) if isinstance(data, str) else len(data)


def _refuse(mailbox: Mailbox, code: str, detail: str) -> None:
    mailbox.hub.metrics.client_errors.labels(code).inc()
    mailbox.say(encode_error(code, detail))


async def _write(websocket: WebSocket, mailbox: Mailbox) -> None:
    """Drains what the hub could not write directly; a client that cannot take a frame within the
    timeout is dropped so it never holds memory or the loop."""
    sent = mailbox.hub.metrics.messages_sent.labels("ws")
    line = mailbox.line
    while (frame := await mailbox.next()) is not None:
        try:
            if line is not None and line.ready():
                line.write(frame.ws)
            else:
                mailbox.busy = True  # until sent: newer frames queue behind this one
                await asyncio.wait_for(websocket.send_text(frame.text), SEND_TIMEOUT_SECONDS)
        except TimeoutError:
            mailbox.hub.metrics.slow_clients.labels("ws", "dropped").inc()
            log.info("realtime.client_dropped", transport="ws", reason="slow")
            with contextlib.suppress(Exception):
                await websocket.close(TRY_AGAIN_LATER, "too slow")
            return
        except (WebSocketDisconnect, RuntimeError, OSError):
            return
        finally:
            mailbox.busy = False
            frame.delivered()
        sent.inc()
