"""Backup and restore, as an operator runs them (`scoreboard backup FILE`, `scoreboard restore FILE`).

The Store adapter decides the format (a SQLite file, or a pg_dump archive). After a restore the
schema is brought up to date (a backup may predate migrations) and the leaderboard cache, which
still holds the replaced database's board, is rebuilt under a new epoch so every connected client
takes the restored board as the truth. The in-memory cache of an embedded server is rebuilt when
that server next starts: restore with the server stopped.
"""

from __future__ import annotations

from pathlib import Path

from scoreboard.adapters import open_store
from scoreboard.config import Settings
from scoreboard.store import postgres_backup, sqlite_backup
from scoreboard.store.backup import Contents, Say
from scoreboard.store.sqlite import path_from_url


def _sqlite_path(settings: Settings) -> Path | None:
    url = settings.database_url
    return path_from_url(url) if url.startswith("sqlite:///") else None


async def backup(settings: Settings, file: Path, pg_bin: Path | None, say: Say) -> Contents:
    """Write a consistent backup of the configured database to `file`; what it holds."""
    path = _sqlite_path(settings)
    if path is not None:
        return sqlite_backup.backup(path, file, say)
    return await postgres_backup.backup(settings.database_url, file, pg_bin, say)


async def restore(settings: Settings, file: Path, force: bool, pg_bin: Path | None, say: Say) -> Contents:
    """Replace the configured database's content with the backup in `file`, migrate it, and rebuild
    a shared cache; what the database now holds."""
    path = _sqlite_path(settings)
    if path is not None:
        restored = sqlite_backup.restore(file, path, force, say)
    else:
        restored = await postgres_backup.restore(settings.database_url, file, force, pg_bin, say)
    applied = open_store(settings).migrate()
    if applied:
        say("migrations applied to the restored database: " + ", ".join(applied))
    if settings.redis_url is None:
        say("the in-memory cache is rebuilt from the restored database when the server starts")
    else:
        from scoreboard.services.admin import rebuild_cache

        epoch, users = await rebuild_cache(settings)
        say(f"cache rebuilt from the restored database: {users} users on the board, new epoch {epoch}")
    return restored
