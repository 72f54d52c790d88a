"""Backup and restore of the SQLite Store through SQLite's online backup API.

The backup is one consistent snapshot, copied in a single step under a read transaction: in WAL
mode the running service keeps committing meanwhile (a copy in several steps would start over at
every commit of another connection). The file is written beside its destination and renamed into
place, so a failed backup never leaves half a file under the name asked for; it is switched to
rollback journaling so that it is one self-contained file.

A restore copies the backup into the database through the same API, under the database's write
lock, in one step: readers of the database see the old content or the new, never a mix."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

from scoreboard.store.backup import COUNT_CONTENTS, BackupError, Contents, Say, read_header

SQLITE_HEADER = b"SQLite format 3\x00"
BUSY_SECONDS = 10.0  # sqlite3's `timeout` is SQLite's busy timeout: wait out the writer's locks


def _connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None, timeout=BUSY_SECONDS)


def contents(conn: sqlite3.Connection) -> Contents | None:
    """What the database holds; None when it has no scoreboard schema."""
    if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'users'").fetchone() is None:
        return None
    users, scored, actions = conn.execute(COUNT_CONTENTS).fetchone()
    return Contents(users, scored, actions)


def backup(database: Path, target: Path, say: Say) -> Contents:
    """Copy the live database at `database` into a new file `target`."""
    if not database.is_file():
        raise BackupError(f"there is no database at {database}: nothing to back up")
    partial = target.with_name(f".{target.name}.partial")
    source = _connect(database)
    try:
        found = contents(source)
        if found is None:
            raise BackupError(f"{database} holds no scoreboard data (run `scoreboard migrate` first?)")
        say(f"backing up {database} ({found}) to {target}")
        with contextlib.closing(_connect(partial)) as copy:
            source.backup(copy)
            copy.execute("PRAGMA journal_mode=DELETE")
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        source.close()
    os.replace(partial, target)
    return found


def check_backup(file: Path) -> None:
    """Refuse anything but a SQLite file: a PostgreSQL dump restored here would be a user's mistake."""
    header = read_header(file, len(SQLITE_HEADER))
    if header != SQLITE_HEADER:
        hint = " (it is a pg_dump archive: restore it into PostgreSQL)" if header.startswith(b"PGDMP") else ""
        raise BackupError(f"{file} is not a SQLite scoreboard backup{hint}")


def restore(file: Path, database: Path, force: bool, say: Say) -> Contents:
    """Replace the database at `database` with the backup `file`; refuses to replace data unless
    `force`."""
    check_backup(file)
    with contextlib.closing(_connect(file)) as source:
        incoming = contents(source)
        if incoming is None:
            raise BackupError(f"{file} is a SQLite file but holds no scoreboard data")
        database.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.closing(_connect(database)) as target:
            present = contents(target)
            if present is not None and present.users > 0 and not force:
                raise BackupError(
                    f"{database} already holds {present}; restoring would replace them."
                    " Pass --force to overwrite"
                )
            say(f"restoring {file} ({incoming}) into {database}")
            source.backup(target)
            target.execute("PRAGMA journal_mode=WAL")  # as the store runs it
            restored = contents(target)
    assert restored is not None
    return restored
