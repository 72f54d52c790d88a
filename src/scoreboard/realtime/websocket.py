"""`GET /ws`: subscribe to the live board over a WebSocket."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from scoreboard.api.deps import Container
from scoreboard.api.problems import Problem, problem_response
from scoreboard.observability.logging import get_logger
from scoreboard.realtime.access import origin_allowed, viewer
from scoreboard.realtime.direct import DirectLine
from scoreboard.realtime.gate import ConnectionGate, Refusal
from scoreboard.realtime.hub import Hub, Mailbox
from scoreboard.realtime.messages import BadClientMessage, ClientMessage, decode_client, encode_error

log = get_logger("scoreboard.realtime")
MAX_MESSAGE_BYTES = 4096
SEND_TIMEOUT_SECONDS = 10.0
FLOOD_MESSAGES, FLOOD_WINDOW_SECONDS = 30, 10.0
NORMAL, GOING_AWAY, POLICY_VIOLATION, TRY_AGAIN_LATER = 1000, 1001, 1008, 1013
RETRY_AFTER_SECONDS = 5


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
    gate: ConnectionGate = websocket.app.state.gate
    refused = await _refusal(websocket, container)
    if refused is not None:
        await _deny(websocket, container, *refused)
        return
    address = websocket.client.host if websocket.client else "unknown"
    over = gate.admit(address)
    if over is not None:
        await _deny(websocket, container, over, _over_cap(over, gate))
        return
    try:
        await _serve(websocket, container, line)
    finally:
        gate.release(address)


async def _refusal(websocket: WebSocket, container: Container) -> tuple[str, Problem] | None:
    if not origin_allowed(websocket.headers, container.settings.allowed_origins):
        return "origin", Problem(403, "forbidden", "this origin may not open /ws")
    principal = await viewer(websocket.headers, websocket.cookies, container)
    if principal is None and not container.settings.public_scoreboard:
        detail = "the scoreboard is not public; send an access token"
        return "unauthenticated", Problem(403, "forbidden", detail)
    return None


def _over_cap(refusal: Refusal, gate: ConnectionGate) -> Problem:
    retry = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    if refusal is Refusal.ADDRESS_LIMIT:
        detail = f"this address already holds {gate.per_address} live connections"
        return Problem(429, "too_many_connections", detail, retry)
    detail = f"this server already holds {gate.total} live connections; retry later"
    return Problem(503, "too_many_connections", detail, retry)


async def _deny(websocket: WebSocket, container: Container, reason: str, problem: Problem) -> None:
    """Refuse the handshake with an HTTP problem document where the server can send one (uvicorn
    can); otherwise close before accepting, which clients see as HTTP 403."""
    container.metrics.refused_connections.labels(reason).inc()
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(problem_response(problem))
    else:
        await websocket.close(TRY_AGAIN_LATER if problem.status != 403 else POLICY_VIOLATION, problem.detail)


async def _serve(websocket: WebSocket, container: Container, line: DirectLine | None) -> None:
    hub: Hub = websocket.app.state.hub
    await websocket.accept()
    farewell = functools.partial(websocket.close, GOING_AWAY, "server shutting down")
    mailbox = Mailbox(hub, "ws", line=line, farewell=farewell)
    metrics = container.metrics
    metrics.connections.labels("ws").inc()
    writer = asyncio.create_task(_write(websocket, mailbox))
    try:
        await _read(websocket, hub, mailbox, container.settings.ws_idle_timeout_seconds)
    finally:
        hub.unsubscribe(mailbox)
        mailbox.close()
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await writer
        metrics.connections.labels("ws").dec()


async def _read(websocket: WebSocket, hub: Hub, mailbox: Mailbox, idle_seconds: float) -> None:
    """Reads client messages until the client leaves, floods, or stays unsubscribed for
    `idle_seconds` (from connecting or unsubscribing): an idle socket only holds a slot."""
    flood = FloodGuard()
    metrics = hub.metrics
    loop = asyncio.get_running_loop()
    idle_until: float | None = loop.time() + idle_seconds
    while True:
        try:
            async with asyncio.timeout_at(idle_until):
                message = await websocket.receive()
        except TimeoutError:
            await websocket.close(NORMAL, "idle: no subscription")
            return
        if message["type"] == "websocket.disconnect":
            return
        if not flood.allow():
            metrics.slow_clients.labels("ws", "flooding").inc()
            log.info("realtime.client_dropped", transport="ws", reason="flooding")
            await websocket.close(POLICY_VIOLATION, "too many messages")
            return
        request = _request(message, mailbox)
        if request is None:
            continue
        hub.unsubscribe(mailbox)
        idle_until = loop.time() + idle_seconds
        if request.type == "subscribe":
            since = (request.since.epoch, request.since.seq) if request.since else None
            hub.subscribe(mailbox, since)
            idle_until = None


def _request(message: Message, mailbox: Mailbox) -> ClientMessage | None:
    """The client's valid request, or None after answering it with an error frame."""
    data = message.get("text") or message.get("bytes") or b""
    if _size(data) > MAX_MESSAGE_BYTES:
        _refuse(mailbox, "message_too_large", f"messages are limited to {MAX_MESSAGE_BYTES} bytes")
        return None
    try:
        return decode_client(data)
    except BadClientMessage as error:
        _refuse(mailbox, error.code, error.detail)
        return None


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
