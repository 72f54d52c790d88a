"""bench/fanout.py's servers: `scoreboard serve` (or uvicorn) processes, what is read about them from
/proc, a py-spy profiler, and the private PostgreSQL database, Redis prefix and RabbitMQ exchanges
that several instances share.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import score_updates
from score_updates import BenchError, scoreboard_command

from scoreboard.server_options import WS_MAX_SIZE

HOST = "127.0.0.1"
_CLOCK_TICK = os.sysconf("SC_CLK_TCK")


class Server(score_updates.Server):
    """The service as a child process with its own data folder (SQLite there unless `shared` names the
    backends several instances share, see `shared_backends`); stopped on exit. `implementation` is
    `serve` (`scoreboard serve`) or uvicorn's --ws implementation to run the app with."""

    def __init__(self, folder: Path, implementation: str, shared: dict[str, str] | None = None) -> None:
        settings = {
            "SCOREBOARD_ACTION_POLICY": "open",
            "SCOREBOARD_LOG_LEVEL": "warning",
            # Every subscriber is 127.0.0.1 here: lift the per-address cap on WebSocket connections.
            "SCOREBOARD_WS_MAX_CONNECTIONS_PER_ADDRESS": "100000",
            "SCOREBOARD_WS_MAX_CONNECTIONS": "100000",
        }
        super().__init__(folder, {**settings, **(shared or {})})
        self.implementation = implementation

    def command(self) -> list[str]:
        if self.implementation == "serve":
            return super().command()
        # uvicorn directly, with what `scoreboard serve` passes to uvicorn.run plus --ws
        return [
            sys.executable,
            "-m",
            "uvicorn",
            "scoreboard.app:create_app",
            "--factory",
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--ws",
            self.implementation,
            "--ws-max-size",
            str(WS_MAX_SIZE),
            "--ws-per-message-deflate",
            "false",
            "--lifespan",
            "on",
            "--log-level",
            "warning",
            "--no-access-log",
        ]

    def __enter__(self) -> Server:
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.implementation != "serve":  # uvicorn does not migrate: do what `scoreboard serve` does first
            with self.log_path.open("wb") as log:
                command = [*scoreboard_command(), "migrate"]
                env = self.environment()
                subprocess.run(command, cwd=self.folder, env=env, stdout=log, stderr=log, check=True)
        super().__enter__()
        return self

    def metrics(self, *names: str) -> dict[str, float]:
        return score_updates.metric_values(self, *names)

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise BenchError("no VmRSS in /proc/PID/status")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, all its threads, so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICK


def machine_cpu() -> tuple[float, float, float]:
    """CPU seconds so far of the whole machine (the first line of /proc/stat): (user + nice + system,
    irq + softirq, steal). Steal is time the hypervisor ran something else on our virtual CPUs."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values[:8]
    return (user + nice + system) / _CLOCK_TICK, (irq + softirq) / _CLOCK_TICK, steal / _CLOCK_TICK


def raise_fd_limit(needed: int) -> int:
    """Raise the soft open-files limit (inherited by the server and the subscriber processes)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return int(soft)


# A profile of the server during the update phase, where py-spy works.


class Profiler:
    def __init__(self, pid: int, output: Path) -> None:
        self.output = output
        command = [str(py_spy()), "record", "--pid", str(pid), "--rate", "250", "--format", "raw"]
        command += ["--nonblocking", "--threads", "--output", str(output)]
        self._process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        time.sleep(1.0)  # py-spy needs a moment to attach

    def stop(self) -> dict[str, list[tuple[str, float]]]:
        self._process.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.communicate(timeout=15)
        own: Counter[str] = Counter()
        inclusive: Counter[str] = Counter()
        total = 0
        with contextlib.suppress(OSError):
            for line in self.output.read_text().splitlines():
                stack, _, count = line.rpartition(" ")
                if not count.isdigit() or not stack:
                    continue
                frames = [f for f in stack.split(";") if not f.startswith(("thread ", "process "))]
                if not frames:
                    continue
                n = int(count)
                total += n
                own[short(frames[-1])] += n
                for frame in {short(f) for f in frames}:
                    inclusive[frame] += n
        if not total:
            return {"self": [], "inclusive": []}
        return {
            "self": [(f, n / total) for f, n in own.most_common(15)],
            "inclusive": [(f, n / total) for f, n in inclusive.most_common(25)],
        }


def short(frame: str) -> str:
    """`send (websockets/protocol.py:123)` → `send (websockets/protocol.py)`: group by function."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/src/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{name} ({path})"


def py_spy() -> Path:
    beside = Path(sys.executable).with_name("py-spy")
    return beside if beside.exists() else Path(shutil.which("py-spy") or "py-spy")


# Backends that several instances share: a private database, Redis prefix and RabbitMQ exchanges.


@contextlib.contextmanager
def shared_backends(postgres: str, redis: str, broker: str | None) -> Iterator[dict[str, str]]:
    """The server settings of one run's instances: a fresh database `scoreboard_bench_<hex>` beside
    `postgres`, Redis keys under `bench:fanout:<hex>:` (the RabbitMQ exchanges, with `broker`, under
    the same prefix) and one JWT secret, so a token from one instance is good on the others. All of
    it is removed afterwards, also on failure; the servers must be stopped first."""
    from rebuild_cache import create_database, delete_keys, drop_database, with_database

    tag = secrets.token_hex(6)
    database, prefix = f"scoreboard_bench_{tag}", f"bench:fanout:{tag}:"
    settings = {
        "SCOREBOARD_DATABASE_URL": with_database(postgres, database),
        "SCOREBOARD_REDIS_URL": redis,
        "SCOREBOARD_REDIS_PREFIX": prefix,
        "SCOREBOARD_JWT_SECRET": secrets.token_hex(32),
    }
    if broker:
        settings["SCOREBOARD_BROKER_URL"] = broker
    try:
        asyncio.run(asyncio.wait_for(create_database(postgres, database), 15))
    except Exception as error:
        raise BenchError(f"could not create database {database} on {postgres}: {error}") from error
    try:
        yield settings
    finally:
        cleanups = [
            (f"Redis keys under {prefix!r}", delete_keys(redis, prefix)),
            (f"database {database}", drop_database(postgres, database)),
        ]
        if broker:
            exchanges = (f"{prefix}scoreboard.board", f"{prefix}scoreboard.events")
            cleanups.append((f"exchanges {', '.join(exchanges)}", delete_exchanges(broker, exchanges)))
        for what, cleanup in cleanups:
            try:
                done = asyncio.run(asyncio.wait_for(cleanup, 30))
                print(f"cleanup: removed the {what}" + ("" if done is None else f" ({done})"))
            except Exception as error:
                print(f"cleanup: could not remove the {what}: {error}", file=sys.stderr)


async def delete_exchanges(url: str, names: tuple[str, ...]) -> None:
    import aio_pika

    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        for name in names:
            await channel.exchange_delete(name)
    finally:
        await connection.close()
