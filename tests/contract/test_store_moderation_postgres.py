"""A ban racing a redemption on PostgreSQL, where both wait on the user's score-row lock: whichever
commits first, the banned user gains nothing on the board and no score event of theirs survives
the ban unpublished."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest

from scoreboard.domain.errors import ActionNotPermitted
from scoreboard.domain.model import Role
from scoreboard.store.base import AdminAct
from scoreboard.store.postgres import PostgresStore
from tests.contract.test_store import at, new_ticket, new_user, pending, redeeming
from tests.postgres_support import private_database

pytestmark = pytest.mark.postgres

LOCK_ROW = "SELECT 1 FROM user_score WHERE user_id = $1 FOR NO KEY UPDATE"


@pytest.fixture
async def database() -> AsyncIterator[str]:
    async with private_database() as url:
        yield url


@pytest.fixture
async def store(database: str) -> AsyncIterator[PostgresStore]:
    opened = PostgresStore(database)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


async def until_waiting_for_a_lock(conn: asyncpg.Connection) -> None:
    """Return once another session of this database waits for a row lock (bounded)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        waiting = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock'"
        )
        if waiting:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("no session started waiting for the lock")


async def test_a_redemption_waiting_while_a_ban_commits_is_refused(
    store: PostgresStore, database: str
) -> None:
    cheat = await new_user(store)
    ticket = await new_ticket(store, cheat, points=5)
    conn = await asyncpg.connect(database)
    try:
        async with conn.transaction():
            await conn.execute(LOCK_ROW, cheat.user_id)  # the ban's first step, as it holds the lock
            redemption = asyncio.ensure_future(store.redeem(redeeming(cheat, ticket.action_id, at(1))))
            await until_waiting_for_a_lock(conn)
            await conn.execute("UPDATE users SET banned_at = now() WHERE user_id = $1", cheat.user_id)
        with pytest.raises(ActionNotPermitted, match="banned"):
            await redemption
        row = await conn.fetchrow(
            "SELECT s.score, a.redeemed_at FROM user_score s JOIN action_log a USING (user_id)"
            " WHERE s.user_id = $1",
            cheat.user_id,
        )
    finally:
        await conn.close()
    assert (row["score"], row["redeemed_at"]) == (0, None)
    assert await pending(store) == []


async def test_a_ban_waiting_for_a_redemption_drops_its_event_and_removes_after_it(
    store: PostgresStore, database: str
) -> None:
    cheat = await new_user(store)
    boss = await new_user(store, roles=(Role.USER, Role.ADMIN))
    conn = await asyncpg.connect(database)
    try:
        async with conn.transaction():
            await conn.execute(LOCK_ROW, cheat.user_id)  # a redemption holding the lock
            ban = asyncio.ensure_future(store.ban(AdminAct(boss.user_id, cheat.user_id, "bot", at(0))))
            await until_waiting_for_a_lock(conn)
            await conn.execute(
                "UPDATE user_score SET score = 5, score_reached_at = $2 WHERE user_id = $1",
                cheat.user_id,
                at(10),
            )
            await conn.execute(
                "INSERT INTO outbox (user_id, display_name, score, reached_at, created_at)"
                " VALUES ($1, 'x', 5, $2, $2)",
                cheat.user_id,
                at(10),
            )
        done = await ban
    finally:
        await conn.close()
    assert done.audit.before.score == 5
    assert done.entry is not None
    assert done.entry.reached_at > at(10)
    assert [e.event_id for e in await pending(store)] == [done.event_id]
