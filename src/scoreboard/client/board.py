"""The live board's client-side rules, pure: the seq/epoch rule and the reconnection back-off."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import msgspec

Verdict = Literal["apply", "stale", "resync"]


class Entry(msgspec.Struct, frozen=True):
    rank: int
    user_id: str
    display_name: str
    score: int


class BoardMessage(msgspec.Struct, frozen=True):
    """A `snapshot` or `update` frame (WebSocket message or SSE `data`)."""

    type: str
    epoch: int
    seq: int
    top: list[Entry]
    channel: str = "scoreboard_updates"


@dataclass(frozen=True)
class Position:
    epoch: int
    seq: int


@dataclass(frozen=True)
class Board:
    """The board after a message was applied; `kind` is "snapshot" (taken as truth) or "update"."""

    epoch: int
    seq: int
    top: tuple[Entry, ...]
    kind: str

    def score_of(self, user_id: str) -> int | None:
        return next((entry.score for entry in self.top if entry.user_id == user_id), None)


@dataclass
class BoardState:
    """Apply a message only if its seq is newer within the epoch; an update that skips a seq, or one
    from another epoch, asks to re-subscribe with `since` (the server replays or sends a snapshot).

    `receive` adds the waiting: ask once, ignore frames while the answer is due, and if it has not closed
    the gap within `patience` seconds (frames lost again, or a server conflating under load) take the next
    message as truth — every message carries the whole top 10 — so the board never stalls."""

    position: Position | None = None
    patience: float = 3.0
    resync_since: float | None = None

    def judge(self, message: BoardMessage) -> Verdict:
        if self.position is None or message.epoch != self.position.epoch:
            return "apply" if message.type == "snapshot" else "resync"
        if message.seq <= self.position.seq:
            return "stale"
        if message.type == "update" and message.seq > self.position.seq + 1:
            return "resync"
        return "apply"

    def receive(self, message: BoardMessage, now: float) -> tuple[bool, bool]:
        """Whether to apply `message` now, and whether to ask the server for a resync."""
        verdict = self.judge(message)
        if verdict != "resync":
            return verdict == "apply", False
        if self.resync_since is None:
            self.resync_since = now
            return False, True
        return now - self.resync_since >= self.patience, False

    def apply(self, message: BoardMessage) -> Board:
        self.resync_since = None
        self.position = Position(message.epoch, message.seq)
        return Board(message.epoch, message.seq, tuple(message.top), message.type)


@dataclass(frozen=True)
class Backoff:
    """Exponential back-off with "equal jitter": half of each step is fixed, half random."""

    initial: float = 0.5
    maximum: float = 15.0
    factor: float = 2.0
    random: Callable[[], float] = field(default=random.random, compare=False)

    def delay(self, attempt: int) -> float:
        step = min(self.maximum, self.initial * self.factor**attempt)
        return step / 2 + self.random() * step / 2
