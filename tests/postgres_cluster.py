"""A private PostgreSQL primary and its streaming replica, started by a test and torn down after it.

    with primary_and_replica() as cluster:   # cluster.primary_url, cluster.replica_url
        ...

`initdb` makes the primary on a free port (`wal_level=replica`, replication trusted on 127.0.0.1),
`pg_basebackup -R` clones it into a hot standby on another free port. The server tools come from
`initdb`'s own directory, so client and server versions match. PostgreSQL refuses to run as root,
so as root everything runs as the `postgres` user, in a temporary directory it owns. Teardown
(`pg_ctl stop -m immediate`, then the directory) runs whatever the test did.

Without `initdb` the test is skipped, or fails under SCOREBOARD_REQUIRE_ALL_BACKENDS=1.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

from tests.backends import all_required
from tests.e2e.server import free_port

HOST = "127.0.0.1"
INITDB_CANDIDATES = ("/usr/local/bin/initdb",)
SERVER_USER = "postgres"
COMMAND_SECONDS = 60


def _unavailable(reason: str) -> NoReturn:
    if all_required():
        pytest.fail(f"{reason} (SCOREBOARD_REQUIRE_ALL_BACKENDS=1: tiers may not be skipped)")
    pytest.skip(reason)


def server_tools() -> Path:
    """The directory of the PostgreSQL server binaries (initdb, pg_ctl, pg_basebackup, ...)."""
    for candidate in (*INITDB_CANDIDATES, shutil.which("initdb")):
        if candidate and os.access(candidate, os.X_OK):
            return Path(os.path.realpath(candidate)).parent
    _unavailable(
        "the replica test needs PostgreSQL's initdb (at /usr/local/bin/initdb or on PATH); none found"
    )


def _server_account() -> pwd.struct_passwd | None:
    """Who runs the servers: this process, unless it is root, which PostgreSQL refuses."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVER_USER)
    except KeyError:
        _unavailable(f"PostgreSQL refuses to run as root, and there is no {SERVER_USER!r} user to run it as")


def _as_server_user() -> list[str]:
    """The prefix that runs a command as a non-root user: PostgreSQL refuses root."""
    if os.geteuid() != 0:
        return []
    runuser = shutil.which("runuser")
    if runuser is not None:
        return [runuser, "-u", SERVER_USER, "--"]
    return ["su", SERVER_USER, "-s", "/bin/sh", "-c", '"$0" "$@"']


@dataclass
class Cluster:
    tools: Path
    folder: Path
    primary_port: int
    replica_port: int

    database: str = "postgres"

    @property
    def primary_url(self) -> str:
        return f"postgresql://postgres@{HOST}:{self.primary_port}/{self.database}"

    @property
    def replica_url(self) -> str:
        return f"postgresql://postgres@{HOST}:{self.replica_port}/{self.database}"

    def run(self, tool: str, *args: str) -> None:
        command = [*_as_server_user(), str(self.tools / tool), *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=COMMAND_SECONDS, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stderr or done.stdout}")

    def data(self, name: str) -> Path:
        return self.folder / name

    def start(self, name: str) -> None:
        self.run("pg_ctl", "-D", str(self.data(name)), "-l", str(self.folder / f"{name}.log"), "-w", "start")

    def stop(self, name: str) -> None:
        if (self.data(name) / "postmaster.pid").exists():
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self.run("pg_ctl", "-D", str(self.data(name)), "-m", "immediate", "-w", "stop")


def _configure_primary(cluster: Cluster) -> None:
    data = cluster.data("primary")
    cluster.run("initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
    settings = {
        "port": cluster.primary_port,
        "listen_addresses": f"'{HOST}'",
        "unix_socket_directories": f"'{cluster.folder}'",
        "wal_level": "replica",
        "max_wal_senders": 4,
        "fsync": "off",  # a throwaway cluster: durability is not what this test measures
        "full_page_writes": "off",
    }
    with (data / "postgresql.conf").open("a") as conf:
        conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
    with (data / "pg_hba.conf").open("a") as hba:
        hba.write(f"host replication all {HOST}/32 trust\n")


def _clone_replica(cluster: Cluster) -> None:
    data = cluster.data("replica")
    cluster.run(
        "pg_basebackup",
        *("-h", HOST, "-p", str(cluster.primary_port), "-U", "postgres"),
        *("-D", str(data), "-R", "-X", "stream", "--no-sync", "-c", "fast"),
    )
    with (data / "postgresql.conf").open("a") as conf:
        conf.write(f"port = {cluster.replica_port}\nhot_standby = on\n")


@contextlib.contextmanager
def primary_and_replica() -> Iterator[Cluster]:
    tools, account = server_tools(), _server_account()
    folder = Path(tempfile.mkdtemp(prefix="scoreboard-replica-"))
    if account is not None:
        os.chown(folder, account.pw_uid, account.pw_gid)
    ports = free_port(), free_port()
    while ports[0] == ports[1]:
        ports = ports[0], free_port()
    cluster = Cluster(tools, folder, *ports)
    try:
        _configure_primary(cluster)
        cluster.start("primary")
        _clone_replica(cluster)
        cluster.start("replica")
        yield cluster
    finally:
        cluster.stop("replica")
        cluster.stop("primary")
        shutil.rmtree(folder, ignore_errors=True)
