"""Versioned schema migrations: numbered SQL files per dialect, applied in order, each once."""

from __future__ import annotations

import re
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
