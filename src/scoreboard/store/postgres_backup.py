"""Backup and restore of the PostgreSQL Store with PostgreSQL's own tools.

`pg_dump -Fc` takes one consistent snapshot of the live database (a repeatable-read transaction:
the service keeps writing meanwhile) into a compressed archive; `pg_restore --clean --if-exists
--single-transaction` replaces the target's tables with the archive's in ONE transaction, so a
failed restore leaves the database as it was.

The tools are looked up on PATH (or in `--pg-bin DIR`) and must be at least the server's major
version: pg_dump cannot read a newer server's catalogs, and an archive is refused by an older
pg_restore. A dump from a newer server is not restored into an older one either. Passwords travel
in PGPASSWORD, never on a command line that `ps` shows.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

import asyncpg

from scoreboard.store.backup import COUNT_CONTENTS, BackupError, Contents, Say, read_header

ARCHIVE_HEADER = b"PGDMP"
CONNECT_SECONDS = 10.0
# pg_dump/pg_restore --verbose lines worth showing as progress: one per table.
_PROGRESS = re.compile(r"(dumping contents of table|processing data for table) (\S+)")


def find_tool(name: str, pg_bin: Path | None) -> str:
    found = shutil.which(name, path=None if pg_bin is None else str(pg_bin))
    if found is None:
        where = f"in {pg_bin}" if pg_bin is not None else "on PATH"
        raise BackupError(
            f"{name} was not found {where}: install PostgreSQL's client tools (Debian:"
            " postgresql-client) or point --pg-bin at the directory that holds them"
        )
    return found


def major_version(tool: str) -> int:
    """The major version a PostgreSQL tool reports (`pg_dump (PostgreSQL) 15.20 ...` → 15)."""
    said = subprocess.run([tool, "--version"], capture_output=True, text=True, timeout=30, check=False)
    found = re.search(r"\(PostgreSQL\) (\d+)", said.stdout)
    if found is None:
        raise BackupError(f"{tool} --version answered {said.stdout.strip()!r}: not a PostgreSQL tool?")
    return int(found.group(1))


def check_tool(tool: str, server_major: int) -> None:
    tool_major = major_version(tool)
    if tool_major < server_major:
        name = Path(tool).name
        raise BackupError(
            f"{tool} is PostgreSQL {tool_major}, but the server runs PostgreSQL {server_major}: {name}"
            f" must be of the server's major version or newer. Install the version {server_major}"
            " client tools, or pass --pg-bin with their directory"
        )


def libpq_url(url: str) -> tuple[str, dict[str, str]]:
    """The URL without its password, and the environment that carries the password instead."""
    parts = urlsplit(url)
    if parts.password is None:
        return url, {}
    userinfo, _, address = parts.netloc.rpartition("@")
    netloc = f"{userinfo.split(':', 1)[0]}@{address}"
    return urlunsplit(parts._replace(netloc=netloc)), {"PGPASSWORD": unquote(parts.password)}


async def _connect(url: str) -> asyncpg.Connection:
    try:
        return await asyncpg.connect(url, timeout=CONNECT_SECONDS)
    except (OSError, asyncpg.PostgresError) as error:
        raise BackupError(f"cannot connect to the database: {error}") from error


async def contents(conn: asyncpg.Connection) -> Contents | None:
    if not await conn.fetchval("SELECT to_regclass('users') IS NOT NULL"):
        return None
    users, scored, actions = await conn.fetchrow(COUNT_CONTENTS)
    return Contents(users, scored, actions)


async def server_major(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SHOW server_version_num")) // 10000


async def _run(command: Sequence[str], env: dict[str, str], say: Say) -> None:
    """Run a tool, relaying its per-table progress; BackupError with its last words if it fails."""
    process = await asyncio.create_subprocess_exec(
        *command,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **env},
    )
    assert process.stderr is not None
    last: list[str] = []
    while raw := await process.stderr.readline():
        line = raw.decode(errors="replace").rstrip()
        if found := _PROGRESS.search(line):
            say(f"  {found.group(2)}")
        last = [*last[-4:], line]
    if await process.wait() != 0:
        name = Path(command[0]).name
        raise BackupError(f"{name} failed (exit {process.returncode}): " + " | ".join(last))


async def backup(url: str, target: Path, pg_bin: Path | None, say: Say) -> Contents:
    """Dump the live database at `url` into a new archive `target`."""
    pg_dump = find_tool("pg_dump", pg_bin)
    conn = await _connect(url)
    try:
        check_tool(pg_dump, await server_major(conn))
        found = await contents(conn)
    finally:
        await conn.close()
    if found is None:
        raise BackupError("the database holds no scoreboard data (run `scoreboard migrate` first?)")
    say(f"backing up the database ({found}) to {target} with {pg_dump}")
    partial = target.with_name(f".{target.name}.partial")
    plain, env = libpq_url(url)
    command = [pg_dump, "--format=custom", "--no-owner", "--no-privileges", "--verbose"]
    try:
        await _run([*command, "--file", str(partial), "--dbname", plain], env, say)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, target)
    return found


def dumped_from(pg_restore: str, file: Path) -> int:
    """The major version of the server an archive was dumped from (pg_restore --list reads it)."""
    listing = subprocess.run(
        [pg_restore, "--list", str(file)], capture_output=True, text=True, timeout=60, check=False
    )
    found = re.search(r"Dumped from database version: (\d+)", listing.stdout)
    if listing.returncode != 0 or found is None:
        raise BackupError(f"{file} is not an archive {pg_restore} can read: {listing.stderr.strip()}")
    return int(found.group(1))


def check_archive(file: Path) -> None:
    header = read_header(file, len(ARCHIVE_HEADER))
    if header != ARCHIVE_HEADER:
        hint = " (it is a SQLite database: restore it into SQLite)" if header.startswith(b"SQLit") else ""
        raise BackupError(f"{file} is not a pg_dump archive of a scoreboard database{hint}")


async def restore(url: str, file: Path, force: bool, pg_bin: Path | None, say: Say) -> Contents:
    """Replace the tables of the database at `url` with the archive's; refuses to replace data
    unless `force`."""
    check_archive(file)
    pg_restore = find_tool("pg_restore", pg_bin)
    source_major = dumped_from(pg_restore, file)
    conn = await _connect(url)
    try:
        target_major = await server_major(conn)
        check_tool(pg_restore, max(target_major, source_major))
        if source_major > target_major:
            raise BackupError(
                f"{file} was dumped from PostgreSQL {source_major}; the target runs {target_major}:"
                " restore into a server at least as new as the one dumped"
            )
        present = await contents(conn)
        if present is not None and present.users > 0 and not force:
            raise BackupError(
                f"the database already holds {present}; restoring would replace them. Pass --force to overwrite"
            )
        say(f"restoring {file} into the database with {pg_restore}")
        plain, env = libpq_url(url)
        options = ["--clean", "--if-exists", "--no-owner", "--no-privileges", "--single-transaction"]
        await _run(
            [pg_restore, *options, "--exit-on-error", "--verbose", "--dbname", plain, str(file)], env, say
        )
        restored = await contents(conn)
    finally:
        await conn.close()
    assert restored is not None
    return restored
