"""What the Store's backup adapters share: the refusal they raise and the summary they report.

A backup is the database's own format, taken while the service runs: SQLite's online backup API
(store/sqlite_backup.py) or `pg_dump -Fc` (store/postgres_backup.py). A restore replaces a
database's content with a backup's, and refuses to replace data unless forced."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

Say = Callable[[str], None]  # where progress lines go (the CLI prints them)


class BackupError(Exception):
    """A backup or restore that cannot be done as asked, or that failed; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class Contents:
    """What a database holds, counted: reported after a backup and after a restore."""

    users: int
    scored: int  # users with a positive score
    actions: int  # rows of the action log (tickets and processed actions)

    def __str__(self) -> str:
        return f"{_count(self.users, 'user')} ({self.scored} on the board), {_count(self.actions, 'action')}"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


# One statement, the same on SQLite and PostgreSQL.
COUNT_CONTENTS = """
SELECT (SELECT count(*) FROM users),
       (SELECT count(*) FROM user_score WHERE score > 0),
       (SELECT count(*) FROM action_log)
"""


def read_header(file: Path, size: int) -> bytes:
    """The first `size` bytes of a backup file, which say what kind of backup it is."""
    try:
        with file.open("rb") as stream:
            return stream.read(size)
    except OSError as error:
        raise BackupError(f"cannot read the backup {file}: {error.strerror or error}") from None
