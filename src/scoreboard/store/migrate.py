"""Versioned schema migrations: numbered SQL files per dialect, applied in order, each once."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations(dialect: str) -> list[Migration]:
    """Every migration shipped for `dialect` ("sqlite" or "postgres"), oldest first."""
    folder = resources.files("scoreboard.store").joinpath("migrations", dialect)
    found = []
    for item in folder.iterdir():
        match = _NAME.match(item.name)
        if match:
            found.append(Migration(int(match[1]), match[2], item.read_text("utf-8")))
    return sorted(found, key=lambda m: m.version)


def pending(dialect: str, applied: set[int]) -> list[Migration]:
    return [m for m in migrations(dialect) if m.version not in applied]


def statements(script: str) -> Iterator[str]:
    """The SQL statements of a migration file, one at a time (SQLite runs one per `execute`);
    `sqlite3.complete_statement` knows where a statement ends, even inside a trigger body."""
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            yield pending
            pending = ""
