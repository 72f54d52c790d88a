"""`BoardStream`: the live board as an async iterator that survives disconnects.

It subscribes over `/ws` (re-subscribing with `since` after a reconnect, so the server replays what was
missed), applies the seq/epoch rule, backs off exponentially with jitter while the server is away, and
falls back to the SSE stream (`Last-Event-ID`) for a connection when the server answers but refuses to
upgrade to a WebSocket (a proxy that strips `Upgrade`, say).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Literal

import httpx
import msgspec
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidHandshake, WebSocketException

from scoreboard.client.board import Backoff, Board, BoardMessage, BoardState, Position

CHANNEL = "scoreboard_updates"
STABLE_SECONDS = 2.0  # a connection that lasted this long earns a fresh back-off
SSE_READ_TIMEOUT_SECONDS = 45.0  # the server sends a heartbeat every 15 s
Transport = Literal["auto", "websocket", "sse"]
_FAILURES = (OSError, TimeoutError, WebSocketException, httpx.HTTPError, msgspec.DecodeError)


@dataclass(frozen=True)
class ConnectionState:
    """`state` is "connecting", "live", "reconnecting" (with `retry_in` seconds) or "closed"."""

    state: str
    transport: str
    attempt: int = 0
    retry_in: float | None = None
    reason: str | None = None


class _Reopen(Exception):
    """An SSE stream cannot re-subscribe in place: reopen it at the current position at once."""


class BoardStream:
    """Every newer board, until `close()`:

    async with BoardStream("http://127.0.0.1:8000") as boards:
        async for board in boards:
            ...
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: Callable[[], str | None] | None = None,
        since: Position | None = None,
        transport: Transport = "auto",
        ws_url: str | None = None,
        stream_url: str | None = None,
        backoff: Backoff | None = None,
        ws_failures_before_fallback: int = 2,
        resync_patience: float = 3.0,
        on_state: Callable[[ConnectionState], None] | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        base_url = base_url.rstrip("/")
        self.ws_url = ws_url or base_url.replace("http", "ws", 1) + "/ws"
        self.stream_url = stream_url or base_url + "/api/leaderboard/stream"
        self.transport = transport
        self.backoff = backoff or Backoff()
        self.ws_failures_before_fallback = ws_failures_before_fallback
        self._token = token or (lambda: None)
        self._on_state = on_state
        self._board = BoardState(since, resync_patience)
        self._http = http
        self._use_sse = transport == "sse"
        self._ws_failures = 0
        self._closed = False
        self._heard = False
        self._socket: ClientConnection | None = None
        self._response: httpx.Response | None = None
        self._iterator: AsyncGenerator[Board, None] | None = None

    @property
    def position(self) -> Position | None:
        return self._board.position

    async def __aenter__(self) -> BoardStream:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()
        if self._iterator is not None:  # suspended at a yield once the caller left its loop
            await self._iterator.aclose()

    async def close(self) -> None:
        """Ends the stream: the current connection closes and iteration stops."""
        self._closed = True
        if self._socket is not None:
            await self._socket.close()
        if self._response is not None:
            await self._response.aclose()

    def __aiter__(self) -> AsyncIterator[Board]:
        self._iterator = self._run()
        return self._iterator

    async def _run(self) -> AsyncGenerator[Board, None]:
        attempt = 0
        while not self._closed:
            started, self._heard, reason = time.monotonic(), False, "closed by the server"
            self._tell("reconnecting" if attempt else "connecting", attempt)
            try:
                async for board in self._stream() if self._use_sse else self._websocket():
                    yield board
            except _Reopen:
                continue
            except _FAILURES as error:
                reason = f"{type(error).__name__}: {error}"
            if self._closed:
                break
            if self._heard or time.monotonic() - started >= STABLE_SECONDS:
                attempt = 0
            delay = self.backoff.delay(attempt)
            attempt += 1
            self._tell("reconnecting", attempt, delay, reason)
            await asyncio.sleep(delay)
        self._tell("closed", 0)

    def _tell(
        self, state: str, attempt: int, retry_in: float | None = None, reason: str | None = None
    ) -> None:
        if self._on_state is not None:
            transport = "sse" if self._use_sse else "websocket"
            self._on_state(ConnectionState(state, transport, attempt, retry_in, reason))

    def _auth(self) -> dict[str, str]:
        token = self._token()
        return {"Authorization": f"Bearer {token}"} if token else {}

    def _subscribe(self) -> str:
        message: dict[str, Any] = {"type": "subscribe", "channel": CHANNEL}
        if self._board.position is not None:
            message["since"] = {"epoch": self._board.position.epoch, "seq": self._board.position.seq}
        return msgspec.json.encode(message).decode()

    def _receive(self, raw: str | bytes) -> tuple[Board | None, bool]:
        """The board to hand out (if any), and whether to re-subscribe."""
        decoded = msgspec.json.decode(raw)
        if not isinstance(decoded, dict) or decoded.get("type") not in ("snapshot", "update"):
            return None, False
        message = msgspec.convert(decoded, BoardMessage)
        self._heard = True
        apply, resync = self._board.receive(message, time.monotonic())
        return (self._board.apply(message) if apply else None), resync

    async def _websocket(self) -> AsyncIterator[Board]:
        try:
            socket = await connect(self.ws_url, additional_headers=self._auth(), open_timeout=10)
        except InvalidHandshake:
            # The server (or a proxy before it) answered but would not upgrade: WebSockets are blocked on
            # this path. A refused connection is not counted: then the server is away, not the WebSocket.
            self._ws_failures += 1
            if self.transport == "auto" and self._ws_failures >= self.ws_failures_before_fallback:
                self._use_sse = True
            raise
        self._ws_failures = 0
        async with socket:
            self._socket = socket
            self._tell("live", 0)
            await socket.send(self._subscribe())
            async for raw in socket:
                board, resync = self._receive(raw)
                if resync:
                    await socket.send(self._subscribe())
                if board is not None:
                    yield board
        self._socket = None

    async def _stream(self) -> AsyncIterator[Board]:
        headers = {"Accept": "text/event-stream", **self._auth()}
        if self._board.position is not None:
            headers["Last-Event-ID"] = f"{self._board.position.epoch}:{self._board.position.seq}"
        timeout = httpx.Timeout(10.0, read=SSE_READ_TIMEOUT_SECONDS)
        http = self._http or httpx.AsyncClient()
        try:
            async with http.stream("GET", self.stream_url, headers=headers, timeout=timeout) as response:
                response.raise_for_status()
                self._response = response
                self._tell("live", 0)
                async for board in self._events(response):
                    yield board
        finally:
            self._response = None
            self._use_sse, self._ws_failures = self.transport == "sse", 0
            if self._http is None:
                await http.aclose()

    async def _events(self, response: httpx.Response) -> AsyncIterator[Board]:
        data: list[str] = []
        async for line in response.aiter_lines():
            if line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
            elif not line and data:
                board, resync = self._receive("\n".join(data))
                data = []
                if resync:
                    raise _Reopen
                if board is not None:
                    yield board
