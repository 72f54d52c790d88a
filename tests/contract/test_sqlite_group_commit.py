"""The SQLite adapter's own promise beyond the Store contract: concurrent writes share commits."""

from __future__ import annotations

import asyncio
from pathlib import Path

from scoreboard.domain.model import Redeemed
from scoreboard.store.sqlite import SqliteStore
from tests.contract.test_store import new_ticket, new_user, redeeming


async def test_concurrent_redemptions_share_commits(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "group-commit.db")
    await store.open()
    try:
        user = await new_user(store)
        tickets = await asyncio.gather(*(new_ticket(store, user) for _ in range(50)))
        batches, writes = store._writer.batches, store._writer.writes

        outcomes = await asyncio.gather(*(store.redeem(redeeming(user, t.action_id)) for t in tickets))

        assert all(isinstance(o, Redeemed) for o in outcomes)
        assert store._writer.writes - writes == 50
        assert store._writer.batches - batches < 50
    finally:
        await store.close()
