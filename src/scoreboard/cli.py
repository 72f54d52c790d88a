"""The `scoreboard` command: serve, migrate, create-user (and more as the service grows)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import scoreboard
from scoreboard.config import ROLES, Settings, SettingsError
from scoreboard.observability.logging import configure_logging
from scoreboard.observability.metrics import MULTIPROC_ENV
from scoreboard.server_options import uvicorn_options

DESCRIPTION = """\
scoreboard keeps a live top-10 scoreboard honest and instant.

With no settings it runs embedded: SQLite in ./scoreboard.db, in-memory cache and broker.
Settings come from SCOREBOARD_* environment variables (see README.md)."""


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    role = args.role or settings.role
    split = "--workers > 1" if args.workers > 1 else f"--role {role}" if role != "all" else None
    if split and not settings.shares_state:
        print(
            f"scoreboard: {split} needs shared state: set SCOREBOARD_DATABASE_URL to PostgreSQL"
            " and SCOREBOARD_REDIS_URL; with the in-memory adapters each process would keep its own"
            " board.",
            file=sys.stderr,
        )
        return 2
    os.environ["SCOREBOARD_ROLE"] = role  # read again by each worker's create_app
    _migrate(settings, quiet=True)
    print(f"scoreboard: serving ({role}) on http://{args.host}:{args.port}/ (API docs at /docs)", flush=True)
    with _shared_metrics(args.workers):
        uvicorn.run(
            "scoreboard.app:create_app",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            **uvicorn_options(settings),
        )
    return 0


@contextlib.contextmanager
def _shared_metrics(workers: int) -> Iterator[None]:
    """With several workers, each must write its metrics where /metrics (answered by any one of
    them) can sum them: prometheus_client's multiprocess mode, in a fresh folder removed at exit,
    unless the operator chose the folder (PROMETHEUS_MULTIPROC_DIR)."""
    if workers <= 1 or os.environ.get(MULTIPROC_ENV):
        yield
        return
    with tempfile.TemporaryDirectory(prefix="scoreboard-metrics-") as folder:
        os.environ[MULTIPROC_ENV] = folder  # the workers inherit it
        try:
            yield
        finally:
            os.environ.pop(MULTIPROC_ENV, None)


def _migrate(settings: Settings, quiet: bool = False) -> int:
    from scoreboard.app import open_store

    applied = open_store(settings).migrate()
    if not quiet or applied:
        print("scoreboard: migrations applied: " + (", ".join(applied) if applied else "none pending"))
    return 0


def _create_user(args: argparse.Namespace, settings: Settings) -> int:
    from scoreboard.domain.model import Role
    from scoreboard.services.admin import create_user

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
        generated = False
    elif sys.stdin.isatty():
        password = getpass.getpass(f"password for {args.name} (empty: generate one): ")
        generated = not password
    else:
        password, generated = "", True
    if generated:
        password = secrets.token_urlsafe(18)
    roles = [Role.USER] + ([Role.ADMIN] if args.admin else []) + ([Role.SERVICE] if args.service else [])
    user = asyncio.run(create_user(settings, args.name, password, args.display_name, tuple(roles)))
    print(f"created user {user.username} ({', '.join(user.roles)}) with id {user.user_id}")
    if generated:
        print(f"generated password: {password}")
    return 0


def _rebuild_cache(settings: Settings) -> int:
    from scoreboard.services.admin import rebuild_cache

    if settings.redis_url is None:
        print("scoreboard: the in-memory cache is rebuilt from the database at every start; nothing to do")
        return 0
    started = time.perf_counter()
    epoch, users = asyncio.run(rebuild_cache(settings))
    print(
        f"scoreboard: cache rebuilt from the database: {users} users, epoch {epoch},"
        f" {time.perf_counter() - started:.1f}s"
    )
    return 0


def _say(line: str) -> None:
    print(f"scoreboard: {line}", flush=True)


def _backup(args: argparse.Namespace, settings: Settings) -> int:
    from scoreboard.services.backup import backup

    started = time.perf_counter()
    found = asyncio.run(backup(settings, args.file, args.pg_bin, _say))
    size = args.file.stat().st_size
    _say(
        f"backup written to {args.file}: {found}, {size / 1024:.0f} KiB in {time.perf_counter() - started:.1f}s"
    )
    return 0


def _restore(args: argparse.Namespace, settings: Settings) -> int:
    from scoreboard.services.backup import restore

    started = time.perf_counter()
    restored = asyncio.run(restore(settings, args.file, args.force, args.pg_bin, _say))
    _say(f"restored {args.file}: the database now holds {restored} ({time.perf_counter() - started:.1f}s)")
    return 0


def _pg_bin_option(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--pg-bin",
        type=Path,
        default=None,
        metavar="DIR",
        help="where pg_dump/pg_restore are (default: PATH)",
    )


def _backup_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    backup = commands.add_parser(
        "backup",
        help="write a consistent backup of the database to FILE, while the service runs",
        description="SQLite: a copy through the online backup API. PostgreSQL: a pg_dump -Fc archive"
        " (pg_dump of the server's major version or newer).",
    )
    backup.add_argument("file", type=Path, metavar="FILE", help="the backup file to write")
    _pg_bin_option(backup)
    restore = commands.add_parser(
        "restore",
        help="replace the database's content with a backup, then rebuild the cache (new epoch)",
        description="Restore a backup made by `scoreboard backup` into SCOREBOARD_DATABASE_URL, apply"
        " pending migrations and rebuild the Redis cache under a new epoch. Refuses to replace a"
        " database that holds users unless --force. Stop embedded (SQLite) servers first.",
    )
    restore.add_argument("file", type=Path, metavar="FILE", help="the backup file to read")
    restore.add_argument("--force", action="store_true", help="replace a database that holds data")
    _pg_bin_option(restore)


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from scoreboard.demo import DemoOptions, run_demo

    options = DemoOptions(args.host, args.port, args.players, args.pace, args.duration)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_demo(settings, options))
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="scoreboard",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    top.add_argument("--version", action="version", version=f"scoreboard {scoreboard.__version__}")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="apply migrations, then serve the HTTP API, WebSocket and page",
        description="Apply pending migrations, then serve HTTP on HOST:PORT.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port to bind (default 8000)")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes (default 1; more need PostgreSQL and Redis)",
    )
    serve.add_argument(
        "--role",
        choices=ROLES,
        default=None,
        help="what this process serves: the HTTP API, the WebSocket/SSE fan-out, the outbox relay, or"
        " all (default: SCOREBOARD_ROLE, else all; split roles need PostgreSQL and Redis)",
    )

    commands.add_parser(
        "migrate",
        help="apply pending database migrations and exit",
        description="Create or upgrade the schema of SCOREBOARD_DATABASE_URL; safe to run twice.",
    )

    create = commands.add_parser(
        "create-user",
        help="create an account (optionally admin or service) from the command line",
        description="Create an account. The password is read from the terminal, from stdin with"
        " --password-stdin, or generated and printed.",
    )
    create.add_argument("name", help="the username (3-32 of letters, digits, '_', '.', '-')")
    create.add_argument("--display-name", default=None, help="shown on the board (default: NAME)")
    create.add_argument("--admin", action="store_true", help="grant the admin role")
    create.add_argument(
        "--service",
        action="store_true",
        help="grant the service role (may redeem actions on users' behalf)",
    )
    create.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    commands.add_parser(
        "rebuild-cache",
        help="rebuild the Redis leaderboard from the database (new epoch)",
        description="Replace the leaderboard cache with the database's truth under a new epoch; every"
        " connected client is sent the new board.",
    )
    _backup_parsers(commands)

    demo = commands.add_parser(
        "demo",
        help="serve and drive simulated players so the board moves by itself",
        description="Serve the app and let simulated players register, take action tickets and"
        " redeem them through the real HTTP API. Uses a throwaway database unless"
        " SCOREBOARD_DATABASE_URL is set.",
    )
    demo.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    demo.add_argument("--port", type=int, default=8000, help="port to bind (default 8000)")
    demo.add_argument("--players", type=int, default=12, help="simulated players (default 12)")
    demo.add_argument(
        "--pace", type=float, default=1.5, help="average seconds between one player's actions (default 1.5)"
    )
    demo.add_argument(
        "--duration", type=float, default=0.0, help="stop after this many seconds (default 0: until Ctrl-C)"
    )
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as error:
        print(f"scoreboard: {error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_format, settings.log_level)  # logs go to stderr; stdout is the answer
    try:
        if args.command == "serve":
            return _serve(args, settings)
        if args.command == "migrate":
            return _migrate(settings)
        if args.command == "create-user":
            return _create_user(args, settings)
        if args.command == "rebuild-cache":
            return _rebuild_cache(settings)
        if args.command == "demo":
            return _demo(args, settings)
        if args.command in ("backup", "restore"):
            return (_backup if args.command == "backup" else _restore)(args, settings)
    except Exception as error:  # a clear line, not a stack trace, for expected failures
        from scoreboard.domain.errors import DomainError, StoreUnavailable
        from scoreboard.store.backup import BackupError

        if isinstance(error, DomainError | SettingsError | StoreUnavailable | BackupError | OSError):
            print(f"scoreboard: {error}", file=sys.stderr)
            return 1
        raise
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
