"""The real-time wire format: server frames (encoded once) and client messages (validated)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from scoreboard.api.strict_json import DuplicateKey, KeyGuard
from scoreboard.domain.model import Board, RankedEntry

CHANNEL = "scoreboard_updates"


class Entry(msgspec.Struct):
    rank: int
    user_id: str
    display_name: str
    score: int


class BoardFrame(msgspec.Struct, tag_field="type"):
    channel: str
    epoch: int
    seq: int
    top: list[Entry]


class Snapshot(BoardFrame, tag="snapshot"):
    pass


class Update(BoardFrame, tag="update"):
    pass


class Since(msgspec.Struct, forbid_unknown_fields=True):
    epoch: int
    seq: Annotated[int, msgspec.Meta(ge=0)]


class ClientMessage(msgspec.Struct, forbid_unknown_fields=True):
    type: Literal["subscribe", "unsubscribe"]
    channel: str
    since: Since | None = None


_encoder = msgspec.json.Encoder()
_update_decoder = msgspec.json.Decoder(Update)
_client_decoder = msgspec.json.Decoder(ClientMessage)
_client_keys = KeyGuard(ClientMessage)


def _entries(board: Board) -> list[Entry]:
    return [Entry(e.rank, e.user_id, e.display_name, e.score) for e in board.entries]


def encode_update(board: Board) -> bytes:
    """The `update` frame for a published change: also the broker message."""
    return _encoder.encode(Update(CHANNEL, board.epoch, board.seq, _entries(board)))


def encode_snapshot(board: Board) -> bytes:
    return _encoder.encode(Snapshot(CHANNEL, board.epoch, board.seq, _entries(board)))


def decode_update(message: bytes) -> Board:
    update = _update_decoder.decode(message)
    entries = tuple(RankedEntry(e.rank, e.user_id, e.display_name, e.score) for e in update.top)
    return Board(update.epoch, update.seq, entries)


def encode_error(code: str, detail: str) -> str:
    return _encoder.encode({"type": "error", "code": code, "detail": detail}).decode()


class BadClientMessage(ValueError):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code, self.detail = code, detail


def decode_client(text: str | bytes) -> ClientMessage:
    try:
        message = _client_decoder.decode(text)
        _client_keys.check(text.encode() if isinstance(text, str) else text)
    except (msgspec.ValidationError, DuplicateKey) as error:
        raise BadClientMessage("bad_message", str(error)) from None
    except msgspec.DecodeError:
        raise BadClientMessage("bad_message", "messages must be JSON objects") from None
    if message.channel != CHANNEL:
        raise BadClientMessage("unknown_channel", f"unknown channel {message.channel!r}; use {CHANNEL!r}")
    return message
