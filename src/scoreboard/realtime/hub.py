"""The hub: this process's one view of the board stream, fanned out to local subscribers.

The broker delivers each `update` once per process; the hub keeps the latest board and a bounded
history for `since` replay, and offers the already-encoded frame to every subscriber's mailbox.
Offering never awaits, so one slow client can never stall the others: a full mailbox is conflated
(its backlog is dropped and the client gets the latest snapshot next — latest state wins).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from scoreboard.domain.model import Board
from scoreboard.observability.metrics import Metrics
from scoreboard.realtime.direct import DirectLine, text_frame
from scoreboard.realtime.messages import decode_update, encode_snapshot

HISTORY = 1000
MAILBOX = 32
REORDER_WAIT_SECONDS = 0.25
FAREWELL_SECONDS = 2.0


@dataclass(eq=False, slots=True)
class Frame:
    """One message, encoded once for each transport: `ws` is the whole WebSocket frame."""

    epoch: int
    seq: int
    text: str
    sse: bytes
    ws: bytes
    on_done: Broadcast | None = None

    @classmethod
    def of(cls, epoch: int, seq: int, body: bytes) -> Frame:
        sse = b"id: %d:%d\ndata: %s\n\n" % (epoch, seq, body)
        return cls(epoch, seq, body.decode(), sse, text_frame(body))

    def delivered(self) -> None:
        if self.on_done is not None:
            self.on_done.delivered()


@dataclass(eq=False, slots=True)
class Broadcast:
    """Counts a frame's local deliveries to time publish → last local send."""

    metrics: Metrics
    started: float
    pending: int

    def delivered(self) -> None:
        self.pending -= 1
        if self.pending == 0:
            self.metrics.broadcast_seconds.observe(time.perf_counter() - self.started)


@dataclass(eq=False)
class Mailbox:
    """A subscriber's bounded queue of frames, read by its transport's writer.

    With a `line` (a socket we may write frames to directly) an idle, healthy subscriber gets a
    frame written at once, without waking its writer; the queue is for the rest: a backlog, a
    socket pushing back, a frame already in flight (`busy`) — order is kept either way."""

    hub: Hub
    transport: str
    capacity: int = MAILBOX
    line: DirectLine | None = None
    farewell: Callable[[], Awaitable[None]] | None = None  # how the transport says "going away"
    frames: deque[Frame] = field(default_factory=deque)
    lagging: bool = False
    closed: bool = False
    busy: bool = False
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    def offer(self, frame: Frame) -> bool:
        """Send or queue `frame`, never blocking; True when it was written out directly.
        A full mailbox is conflated to the latest snapshot."""
        line = self.line
        if line is not None and not (self.frames or self.lagging or self.busy) and line.ready():
            line.write(frame.ws)
            frame.delivered()
            return True
        if len(self.frames) >= self.capacity:
            self.resync()
            frame.delivered()
            self.hub.metrics.slow_clients.labels(self.transport, "conflated").inc()
        else:
            self.frames.append(frame)
        self._wake.set()
        return False

    def resync(self) -> None:
        """Drop the backlog; the next frame is the hub's latest snapshot."""
        self._drop_backlog()
        self.lagging = True
        self._wake.set()

    def _drop_backlog(self) -> None:
        for dropped in self.frames:
            dropped.delivered()
        self.frames.clear()

    def say(self, text: str) -> None:
        """Queue a frame addressed to this client alone (errors)."""
        self.frames.append(Frame(0, 0, text, b"", text_frame(text.encode())))
        self._wake.set()

    async def next(self, idle_seconds: float | None = None) -> Frame | None:
        """The next frame to send; None after `idle_seconds` without one, or once closed."""
        while not self.frames and not self.lagging:
            if self.closed:
                return None
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), idle_seconds)
            except TimeoutError:
                return None
        if self.lagging:
            self.lagging = False
            self._drop_backlog()  # queued since the conflation: older than the snapshot
            return self.hub.snapshot()
        return self.frames.popleft()

    async def hang_up(self) -> None:
        """Stop sending, and tell the client the server is going away."""
        self.close()
        if self.farewell is not None:
            await self.farewell()

    def close(self) -> None:
        self.closed = True
        for frame in self.frames:
            frame.delivered()
        self.frames.clear()
        self._wake.set()


class Hub:
    def __init__(self, metrics: Metrics, history: int = HISTORY) -> None:
        self.metrics = metrics
        self._board = Board(0, 0, ())
        self._history: deque[Frame] = deque(maxlen=history)
        self._snapshot: Frame | None = None
        self._subscribers: set[Mailbox] = set()
        self._early: dict[int, tuple[Board, bytes]] = {}
        self._gap_timer: asyncio.TimerHandle | None = None
        self._sent_directly = metrics.messages_sent.labels("ws")

    @property
    def board(self) -> Board:
        return self._board

    def reset(self, board: Board) -> None:
        """Start from `board` (a rebuild or a fresh start): history is gone, everyone re-snapshots."""
        self._board, self._snapshot = board, None
        self._early.clear()
        self._history.clear()
        for mailbox in self._subscribers:
            mailbox.resync()  # queued frames belong to the old epoch

    def on_message(self, message: bytes) -> None:
        """The broker's callback: one published `update`, decoded once, offered to everyone.

        Brokers that publish from several instances (RabbitMQ) may deliver seq N+1 before N; an
        early message waits briefly for the missing one, so subscribers still see one order."""
        board = decode_update(message)
        current = self._board
        if board.epoch == current.epoch and board.seq <= current.seq:
            return  # a repeat or a late arrival: already reflected
        if board.epoch == current.epoch and board.seq > current.seq + 1:
            self._hold(board, message)
            return
        self._accept(board, message)
        while (nxt := self._early.pop(self._board.seq + 1, None)) is not None:
            self._accept(*nxt)
        if not self._early and self._gap_timer is not None:
            self._gap_timer.cancel()
            self._gap_timer = None

    def catch_up(self, message: bytes) -> None:
        """Take `message` as the current board now, even across a gap (the missing updates are known
        to be lost): subscribers get it as an update, history restarts from it."""
        board = decode_update(message)
        current = self._board
        if board.epoch == current.epoch and board.seq <= current.seq:
            return
        self._early = {seq: held for seq, held in self._early.items() if seq > board.seq}
        self._accept(board, message)

    def _hold(self, board: Board, message: bytes) -> None:
        self._early[board.seq] = (board, message)
        if self._gap_timer is None:
            loop = asyncio.get_running_loop()
            self._gap_timer = loop.call_later(REORDER_WAIT_SECONDS, self._give_up_waiting)

    def _give_up_waiting(self) -> None:
        """The missing seq never came (lost in a broker reconnect): move on past the gap."""
        self._gap_timer = None
        early, self._early = self._early, {}
        for seq in sorted(early):
            if seq > self._board.seq or early[seq][0].epoch != self._board.epoch:
                self._accept(*early[seq])

    def _accept(self, board: Board, message: bytes) -> None:
        current = self._board
        if board.epoch != current.epoch or board.seq != current.seq + 1:
            self._history.clear()  # a gap or a new epoch: history cannot bridge it
        frame = Frame.of(board.epoch, board.seq, message)
        self._board, self._snapshot = board, None
        self._history.append(frame)
        self._fan_out(frame)

    def _fan_out(self, frame: Frame) -> None:
        if not self._subscribers:
            return
        frame.on_done = Broadcast(self.metrics, time.perf_counter(), len(self._subscribers))
        self._count_direct(sum(mailbox.offer(frame) for mailbox in self._subscribers))

    def _count_direct(self, sent: int) -> None:
        if sent:
            self._sent_directly.inc(sent)  # once per broadcast, not per subscriber

    def snapshot(self) -> Frame:
        if self._snapshot is None:
            board = self._board
            self._snapshot = Frame.of(board.epoch, board.seq, encode_snapshot(board))
        return self._snapshot

    def subscribe(self, mailbox: Mailbox, since: tuple[int, int] | None = None) -> None:
        """Add `mailbox`, first queueing the missed updates after `since` if history has them all,
        else a snapshot."""
        missed = self.replay(since) if since is not None else None
        frames = [self.snapshot()] if missed is None else missed
        self._count_direct(sum(mailbox.offer(frame) for frame in frames))
        self._subscribers.add(mailbox)

    def unsubscribe(self, mailbox: Mailbox) -> None:
        self._subscribers.discard(mailbox)

    def replay(self, since: tuple[int, int]) -> list[Frame] | None:
        """The frames after `since`, or None when history cannot serve it completely."""
        epoch, seq = since
        if epoch != self._board.epoch or seq > self._board.seq:
            return None
        if seq == self._board.seq:
            return []
        if not self._history or self._history[0].seq > seq + 1:
            return None
        return [frame for frame in self._history if frame.seq > seq]

    async def going_away(self) -> None:
        """Hang up on every subscriber (the process is stopping), for at most FAREWELL_SECONDS."""
        mailboxes, self._subscribers = self._subscribers, set()
        hangups = asyncio.gather(*(mailbox.hang_up() for mailbox in mailboxes), return_exceptions=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(hangups, FAREWELL_SECONDS)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)
