"""Operator tasks run outside the server (the CLI): they open the Store briefly and close it."""

from __future__ import annotations

from scoreboard.app import build_container
from scoreboard.config import Settings
from scoreboard.domain.model import Role, User


async def create_user(
    settings: Settings,
    username: str,
    password: str,
    display_name: str | None,
    roles: tuple[Role, ...],
) -> User:
    container = build_container(settings)
    await container.store.open()
    try:
        return await container.accounts.register(username, password, display_name, "cli", roles)
    finally:
        await container.store.close()


async def rebuild_cache(settings: Settings) -> tuple[int, int]:
    """Rebuild the leaderboard cache from the Store under a new epoch and announce it.

    Returns (epoch, number of users on the board)."""
    container = build_container(settings)
    await container.store.open()
    try:
        board, users = await container.keeper.rebuild_counted()
        return board.epoch, users
    finally:
        await container.broker.close()
        await container.board.close()
        await container.store.close()
