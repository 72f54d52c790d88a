"""The wire form of a board, encoded once per change and shared by HTTP, WebSocket and SSE."""

from __future__ import annotations

import msgspec

from scoreboard.domain.model import Board

_encoder = msgspec.json.Encoder()


def board_body(board: Board) -> dict[str, object]:
    return {
        "epoch": board.epoch,
        "seq": board.seq,
        "entries": [
            {"rank": e.rank, "user_id": e.user_id, "display_name": e.display_name, "score": e.score}
            for e in board.entries
        ],
    }


def encode_board(board: Board) -> bytes:
    """The body of GET /api/leaderboard."""
    return _encoder.encode(board_body(board))
