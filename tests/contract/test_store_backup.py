"""`scoreboard backup FILE` / `scoreboard restore FILE`, run as an operator runs them, on each Store:
a backup restored into a fresh database holds the same users, scores, action log, outbox and board;
a restore never replaces data unless forced; a shared cache is rebuilt under a new epoch."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from scoreboard.adapters import open_store
from scoreboard.cli import main
from scoreboard.config import Settings
from scoreboard.domain.model import User
from scoreboard.leaderboard.redis import RedisLeaderboard
from scoreboard.services.admin import rebuild_cache
from scoreboard.store.base import Store
from tests.backends import REDIS_URL, all_required, require
from tests.contract.test_store import new_ticket, new_user, pending, redeeming
from tests.isolation import delete_redis_prefix, unique
from tests.postgres_support import private_database

STORES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def require_pg_tools() -> None:
    if shutil.which("pg_dump") and shutil.which("pg_restore"):
        return
    reason = "PostgreSQL backups need pg_dump and pg_restore on PATH; not found"
    if all_required():
        pytest.fail(f"{reason} (SCOREBOARD_REQUIRE_ALL_BACKENDS=1: tiers may not be skipped)")
    pytest.skip(reason)


@asynccontextmanager
async def two_databases(kind: str, tmp_path: Path) -> AsyncIterator[tuple[str, str]]:
    """A source and a fresh, empty target database of one kind."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'source.db'}", f"sqlite:///{tmp_path / 'target.db'}"
        return
    require_pg_tools()
    async with private_database() as source, private_database() as target:
        yield source, target


@asynccontextmanager
async def opened(url: str) -> AsyncIterator[Store]:
    store = open_store(Settings(database_url=url))
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def seed(url: str, players: int = 4) -> list[User]:
    """Users with different scores, a tie, a zero, an unredeemed ticket and a published event."""
    async with opened(url) as store:
        users = [await new_user(store) for _ in range(players)]
        for user, tickets in zip(users, (3, 1, 1, 0), strict=False):
            for _ in range(tickets):
                ticket = await new_ticket(store, user, points=2)
                await store.redeem(redeeming(user, ticket.action_id))
        await new_ticket(store, users[-1])  # issued, never redeemed
        events = await pending(store)
        await store.mark_published([events[0].event_id])
    return users


@dataclass
class Snapshot:
    top: list[Any]
    scores: list[Any]
    ranks: list[int | None]
    credentials: list[Any]
    outbox: list[Any]
    action_log: list[Any]


async def snapshot(url: str, users: list[User]) -> Snapshot:
    async with opened(url) as store:
        return Snapshot(
            top=await store.top(100),
            scores=[await store.score_of(u.user_id) for u in users],
            ranks=[await store.rank_of(u.user_id) for u in users],
            credentials=[await store.credentials(u.username) for u in users],
            outbox=await pending(store),
            action_log=await action_log(url),
        )


async def action_log(url: str) -> list[Any]:
    query = "SELECT * FROM action_log ORDER BY action_id"
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            return conn.execute(query).fetchall()
    conn = await asyncpg.connect(url)
    try:
        return [tuple(row) for row in await conn.fetch(query)]
    finally:
        await conn.close()


async def scoreboard(monkeypatch: pytest.MonkeyPatch, url: str, *args: str, **env: str) -> int:
    """The `scoreboard` command on the database at `url` (in a thread: it runs its own event loop)."""
    monkeypatch.setenv("SCOREBOARD_DATABASE_URL", url)
    for name, value in env.items():
        monkeypatch.setenv(f"SCOREBOARD_{name}", value)
    return await asyncio.to_thread(main, list(args))


@pytest.mark.parametrize("kind", STORES)
async def test_a_restored_backup_has_the_same_scores_action_log_and_board(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "scoreboard.backup"
    async with two_databases(kind, tmp_path) as (source, target):
        users = await seed(source)
        before = await snapshot(source, users)

        backed_up = await scoreboard(monkeypatch, source, "backup", str(file))
        said_backup = capsys.readouterr().out
        restored = await scoreboard(monkeypatch, target, "restore", str(file))
        said_restore = capsys.readouterr().out
        after = await snapshot(target, users)

    assert (backed_up, restored) == (0, 0)
    assert after == before
    assert [e.score for e in after.top] == [6, 2, 2]
    assert len(after.action_log) == 6  # five redeemed, one still open
    assert "4 users (3 on the board), 6 actions" in said_backup
    assert "now holds 4 users (3 on the board), 6 actions" in said_restore


@pytest.mark.parametrize("kind", STORES)
async def test_restore_refuses_a_database_that_holds_users_unless_forced(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "scoreboard.backup"
    async with two_databases(kind, tmp_path) as (source, target):
        saved = await seed(source, players=2)
        await scoreboard(monkeypatch, source, "backup", str(file))
        resident = await seed(target, players=3)
        capsys.readouterr()

        refused = await scoreboard(monkeypatch, target, "restore", str(file))
        said = capsys.readouterr().err
        kept = await snapshot(target, resident)
        forced = await scoreboard(monkeypatch, target, "restore", str(file), "--force")
        replaced = await snapshot(target, saved)
        expected = await snapshot(source, saved)

    assert refused == 1
    assert "already holds 3 users" in said
    assert "--force" in said
    assert all(entry is not None for entry in kept.scores)  # nothing was touched
    assert forced == 0
    assert replaced == expected


@pytest.mark.redis
@pytest.mark.parametrize("kind", STORES)
async def test_restore_rebuilds_the_shared_cache_under_a_new_epoch(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require("redis")
    file, prefix = tmp_path / "scoreboard.backup", unique()
    async with two_databases(kind, tmp_path) as (source, target):
        users = await seed(source)
        await scoreboard(monkeypatch, source, "backup", str(file))
        shared = Settings(database_url=target, redis_url=REDIS_URL, redis_prefix=prefix)
        old_epoch, _ = await rebuild_cache(shared)  # the running deployment's (empty) board
        board = RedisLeaderboard.from_url(REDIS_URL, prefix=prefix)
        try:
            restored = await scoreboard(
                monkeypatch, target, "restore", str(file), REDIS_URL=REDIS_URL, REDIS_PREFIX=prefix
            )
            cached = await board.board(10)
            truth = await snapshot(target, users)
        finally:
            await board.close()
            await delete_redis_prefix(prefix)

    assert restored == 0
    assert cached.epoch > old_epoch
    assert [(e.user_id, e.score) for e in cached.entries] == [(e.user_id, e.score) for e in truth.top]
    assert len(cached.entries) == 3


def fake_tool(folder: Path, name: str, version: str) -> None:
    folder.mkdir(exist_ok=True)
    tool = folder / name
    tool.write_text(f"#!/bin/sh\necho '{name} (PostgreSQL) {version}'\n")
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)


@pytest.mark.postgres
async def test_postgres_backup_refuses_tools_older_than_the_server_or_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    old, empty = tmp_path / "old-bin", tmp_path / "empty-bin"
    fake_tool(old, "pg_dump", "9.6.24")
    empty.mkdir()
    async with private_database() as url:
        await seed(url, players=1)
        too_old = await scoreboard(monkeypatch, url, "backup", str(tmp_path / "a"), "--pg-bin", str(old))
        said_old = capsys.readouterr().err
        missing = await scoreboard(monkeypatch, url, "backup", str(tmp_path / "b"), "--pg-bin", str(empty))
        said_missing = capsys.readouterr().err

    assert (too_old, missing) == (1, 1)
    assert "pg_dump is PostgreSQL 9, but the server runs PostgreSQL" in said_old
    assert f"pg_dump was not found in {empty}" in said_missing
    assert not (tmp_path / "a").exists()
    assert not (tmp_path / "b").exists()


@pytest.mark.postgres
async def test_a_backup_of_one_store_is_refused_by_the_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    lite = f"sqlite:///{tmp_path / 'lite.db'}"
    await seed(lite, players=1)
    await scoreboard(monkeypatch, lite, "backup", str(tmp_path / "lite.backup"))
    async with private_database() as url:
        refused = await scoreboard(monkeypatch, url, "restore", str(tmp_path / "lite.backup"))
        said = capsys.readouterr().err

    assert refused == 1
    assert "not a pg_dump archive" in said
    assert "it is a SQLite database" in said
