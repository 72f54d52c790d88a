"""A Python client for scoreboard: the HTTP API (`ScoreboardClient`) and the live board (`BoardStream`).

async with ScoreboardClient("http://127.0.0.1:8000") as client:
    await client.login("ada", "correct horse battery staple")
    ticket = await client.request_action()
    print(await client.complete_action(ticket.action_id))
    async with client.board_stream() as boards:
        async for board in boards:
            print(board.seq, [(e.display_name, e.score) for e in board.top])
"""

from scoreboard.client.api import (
    Completed,
    Leaderboard,
    ScoreboardClient,
    ScoreboardError,
    Session,
    Ticket,
    UserScore,
)
from scoreboard.client.board import Backoff, Board, BoardState, Entry, Position
from scoreboard.client.stream import BoardStream, ConnectionState

__all__ = [
    "Backoff",
    "Board",
    "BoardState",
    "BoardStream",
    "Completed",
    "ConnectionState",
    "Entry",
    "Leaderboard",
    "Position",
    "ScoreboardClient",
    "ScoreboardError",
    "Session",
    "Ticket",
    "UserScore",
]
