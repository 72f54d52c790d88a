"""End-to-end benchmark: score updates per second against a real `scoreboard serve` process.

1. Starts `scoreboard serve` on a free 127.0.0.1 port, embedded (a fresh SQLite file in a temporary
   folder, in-memory cache), rate limits off, JSON logs to a file in that folder.
2. Registers and logs in --users accounts (argon2 makes this slow; not timed), then warms the server
   up with a few hundred updates.
3. For each count in --clients: issues --requests action tickets (not timed), then redeems every one
   with POST /api/score/update over that many concurrent keep-alive connections (timed; at most
   --max-seconds), reading the server's CPU time (utime + stime in /proc/PID/stat) before and after.
4. Checks that the scores on the leaderboard add up to the number of 200 answers; stops the server.

With --token-algorithms HS256,EdDSA,RS256 it does all of that once per algorithm, one server after
the other (EdDSA and RS256 with a freshly generated key file), prints a side-by-side table with each
algorithm's cost to verify a token it has not seen before, and writes them all to --json.

The load generator is wrk with bench/score_updates.lua when `wrk` is on PATH (Debian: apt-get install
wrk), else a lean Python client speaking HTTP/1.1 over asyncio streams; the output names the one used.
When `perf` works, the server's fsync/fdatasync calls are counted too (one per SQLite commit).
Exit status: 0 when all is well, 1 when the scores do not add up or an update was not answered 200,
2 when the benchmark could not run.

    .venv/bin/python bench/score_updates.py [--clients 1,64] [--requests 4000] [--users 64] [--json FILE]
    .venv/bin/python bench/score_updates.py --clients 64 --token-algorithms HS256,EdDSA,RS256
        [--rate-limits off,on,off,on]   # rate limiting off vs on, a fresh server each, side by side

docs/benchmarks.md explains the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import itertools
import json
import math
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

HOST = "127.0.0.1"
PASSWORD = "bench-password-0123"
REPOSITORY = Path(__file__).resolve().parent.parent
LUA_SCRIPT = Path(__file__).with_suffix(".lua")
WRK_THREADS = 1  # one load thread leaves the other core to the server (event loop + SQLite writer)
WARMUP_UPDATES = 300
SETUP_CONNECTIONS = 32
REGISTER_CONNECTIONS = 4  # argon2 is CPU-bound: more would only queue in the server's thread pool
FSYNC_EVENTS = "syscalls:sys_enter_fsync,syscalls:sys_enter_fdatasync"
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)
_CLOCK_TICK = os.sysconf("SC_CLK_TCK")


class BenchError(RuntimeError):
    """The benchmark could not run (the server failed, a setup call was refused, a tool broke)."""


# A minimal HTTP/1.1 client: keep-alive connections and pre-encoded requests. Far cheaper per request
# than a general-purpose client, so that on a small machine the server is what gets measured.


def encode_request(method: str, path: str, body: Any = None, token: str | None = None) -> bytes:
    payload = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}"]
    if token is not None:
        lines.append(f"Authorization: Bearer {token}")
    if body is not None:
        lines.append("Content-Type: application/json")
    lines.append(f"Content-Length: {len(payload)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(HOST, port)
        return cls(reader, writer)

    async def send(self, raw: bytes) -> tuple[int, bytes]:
        """Send one pre-encoded request; the status and body of its answer."""
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = _CONTENT_LENGTH.search(head)
        if length is None:
            raise BenchError(f"an answer without Content-Length: {head[:200]!r}")
        body = await self.reader.readexactly(int(length.group(1)))
        return int(head[9:12]), body

    async def call(self, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
        status, answer = await self.send(encode_request(method, path, body, token))
        if status >= 300:
            raise BenchError(f"{method} {path} answered {status}: {answer[:300]!r}")
        return json.loads(answer)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


async def on_connections(
    port: int, count: int, jobs: Sequence[Callable[[Connection], Awaitable[T]]]
) -> list[T]:
    """Run `jobs` over `count` connections, each taking the next job when free; results in order."""
    results: list[Any] = [None] * len(jobs)
    position = iter(range(len(jobs)))

    async def worker() -> None:
        conn = await Connection.open(port)
        try:
            for i in position:
                results[i] = await jobs[i](conn)
        finally:
            await conn.close()

    await asyncio.gather(*(worker() for _ in range(min(count, len(jobs)))))
    return results


def event_loop_factory() -> tuple[Callable[[], asyncio.AbstractEventLoop] | None, str]:
    try:
        import uvloop
    except ImportError:
        return None, "asyncio"
    return uvloop.new_event_loop, "asyncio+uvloop"


# The server under test.


class Server:
    """`scoreboard serve` as a child process with its own data folder; stopped on exit."""

    def __init__(self, folder: Path, extra_env: dict[str, str]) -> None:
        self.folder = folder
        self.extra_env = extra_env
        self.port = free_port()
        self.log_path = folder / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SCOREBOARD_")}
        env.update(
            SCOREBOARD_DATABASE_URL=f"sqlite:///{self.folder / 'scoreboard.db'}",
            SCOREBOARD_JWT_SECRET=os.urandom(32).hex(),
            SCOREBOARD_ACCESS_TOKEN_TTL_SECONDS="3600",
            SCOREBOARD_RATE_LIMIT_SCORE_UPDATES="off",
            SCOREBOARD_RATE_LIMIT_ACTIONS="off",
            SCOREBOARD_RATE_LIMIT_LOGIN="off",
            SCOREBOARD_RATE_LIMIT_REGISTER="off",
            SCOREBOARD_LOG_FORMAT="json",
        )
        env.update(self.extra_env)
        return env

    def command(self) -> list[str]:
        return [*scoreboard_command(), "serve", "--host", HOST, "--port", str(self.port)]

    def __enter__(self) -> Server:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.command(), cwd=self.folder, env=self.environment(), stdout=log, stderr=subprocess.STDOUT
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def _wait_ready(self, timeout: float = 60.0) -> None:
        give_up = time.monotonic() + timeout
        while time.monotonic() < give_up:
            if self.process is not None and self.process.poll() is not None:
                raise BenchError(f"the server exited with {self.process.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(OSError):
                if self.get("/readyz").get("status") == "ready":
                    return
            time.sleep(0.1)
        raise BenchError(f"the server was not ready after {timeout:.0f} s:\n{self.log_tail()}")

    def get(self, path: str) -> Any:
        return json.loads(self.get_text(path))

    def get_text(self, path: str) -> str:
        with urllib.request.urlopen(f"http://{HOST}:{self.port}{path}", timeout=10) as answer:
            return str(answer.read().decode())

    def cpu_times(self) -> tuple[float, float]:
        """(user, system) CPU seconds of the server process, all its threads, so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rpartition(")")[2].split()
        return int(fields[11]) / _CLOCK_TICK, int(fields[12]) / _CLOCK_TICK

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def scoreboard_command() -> list[str]:
    """The `scoreboard` command of the Python running this script (the project's .venv)."""
    script = Path(sys.executable).with_name("scoreboard")
    return [str(script)] if script.exists() else [sys.executable, "-m", "scoreboard.cli"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


# Side measurements, each only where its tool works: fsyncs (perf) and a profile (py-spy).


class FsyncCounter:
    """Counts the server's fsync/fdatasync calls with `perf stat`: counted in the kernel, cheap."""

    def __init__(self, pid: int) -> None:
        self._process = subprocess.Popen(
            ["perf", "stat", "-x,", "-e", FSYNC_EVENTS, "-p", str(pid)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(0.3)  # let perf attach before the phase starts

    @staticmethod
    def works(pid: int) -> bool:
        return shutil.which("perf") is not None and FsyncCounter(pid).stop() is not None

    def stop(self) -> int | None:
        self._process.send_signal(signal.SIGINT)
        _, report = self._process.communicate(timeout=15)
        counts = [line.split(",")[0] for line in report.splitlines() if "sys_enter_f" in line]
        if len(counts) != 2 or not all(c.isdigit() for c in counts):
            return None
        return sum(int(c) for c in counts)


class Profiler:
    """Samples the server's Python stacks with py-spy (without pausing it) into collapsed stacks,
    which flamegraph.pl or speedscope can draw."""

    def __init__(self, pid: int, output: Path) -> None:
        self.output = output
        command = [str(py_spy()), "record", "--pid", str(pid), "--rate", "200", "--format", "raw"]
        command += ["--nonblocking", "--output", str(output)]
        self._process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        time.sleep(1.0)  # py-spy needs a moment to attach

    def stop(self) -> list[tuple[str, float]]:
        self._process.send_signal(signal.SIGINT)
        _, errors = self._process.communicate(timeout=30)
        if not self.output.exists():
            raise BenchError(f"py-spy wrote no profile: {errors.strip()}")
        return top_frames(self.output)


def py_spy() -> Path:
    beside = Path(sys.executable).with_name("py-spy")
    if beside.exists():
        return beside
    found = shutil.which("py-spy")
    if found is None:
        raise BenchError("--profile needs py-spy (e.g. .venv/bin/pip install py-spy)")
    return Path(found)


def top_frames(collapsed: Path, count: int = 10) -> list[tuple[str, float]]:
    """The Python frames with the most self time (time in C code counts to its caller)."""
    self_samples: Counter[str] = Counter()
    for line in collapsed.read_text(errors="replace").splitlines():
        stack, _, samples = line.rpartition(" ")
        if stack and samples.isdigit():
            self_samples[stack.rpartition(";")[2]] += int(samples)
    total = sum(self_samples.values()) or 1
    return [(frame, n / total) for frame, n in self_samples.most_common(count)]


# Setup: accounts and tickets.


@dataclass(frozen=True)
class Account:
    user_id: str
    token: str


async def create_accounts(port: int, count: int) -> list[Account]:
    tag = os.urandom(3).hex()

    def job(i: int) -> Callable[[Connection], Awaitable[Account]]:
        async def run(conn: Connection) -> Account:
            credentials = {"username": f"bench_{tag}_{i}", "password": PASSWORD}
            user = await conn.call("POST", "/api/auth/register", credentials)
            login = await conn.call("POST", "/api/auth/login", credentials)
            return Account(user["user_id"], login["access_token"])

        return run

    return await on_connections(port, REGISTER_CONNECTIONS, [job(i) for i in range(count)])


Ticket = tuple[Account, str]  # owner, action_id


async def issue_tickets(port: int, accounts: Sequence[Account], count: int) -> list[Ticket]:
    """`count` tickets dealt round-robin over the accounts."""

    def job(owner: Account) -> Callable[[Connection], Awaitable[Ticket]]:
        async def run(conn: Connection) -> Ticket:
            ticket = await conn.call("POST", "/api/actions", {"type": "default"}, owner.token)
            return owner, str(ticket["action_id"])

        return run

    jobs = [job(accounts[i % len(accounts)]) for i in range(count)]
    return await on_connections(port, SETUP_CONNECTIONS, jobs)


def update_body(ticket: Ticket) -> dict[str, str]:
    owner, action_id = ticket
    return {"user_id": owner.user_id, "action_id": action_id}


# The timed part: one driver per load generator, each redeeming every ticket once.


@dataclass
class Drive:
    sent: int
    ok: int
    statuses: dict[str, int]
    elapsed_s: float  # first request sent to last answer received
    p50_ms: float
    p99_ms: float
    max_ms: float
    client_cpu_s: float
    errors: dict[str, int] = field(default_factory=dict)


async def drive_python(port: int, tickets: Sequence[Ticket], clients: int, max_seconds: float) -> Drive:
    raws = [encode_request("POST", "/api/score/update", update_body(t), t[0].token) for t in tickets]
    connections = [await Connection.open(port) for _ in range(clients)]
    latencies: list[int] = []
    statuses: Counter[int] = Counter()
    position = iter(range(len(raws)))
    client_cpu, started = time.process_time(), time.perf_counter()
    deadline = started + max_seconds

    async def client(conn: Connection) -> None:
        for i in position:
            sent = time.perf_counter_ns()
            status, _ = await conn.send(raws[i])
            latencies.append(time.perf_counter_ns() - sent)
            statuses[status] += 1
            if time.perf_counter() >= deadline:
                return

    await asyncio.gather(*(client(conn) for conn in connections))
    elapsed, client_cpu = time.perf_counter() - started, time.process_time() - client_cpu
    for conn in connections:
        await conn.close()
    latencies.sort()
    return Drive(
        sent=len(latencies),
        ok=statuses[200],
        statuses={str(k): v for k, v in sorted(statuses.items())},
        elapsed_s=elapsed,
        p50_ms=percentile(latencies, 50) / 1e6,
        p99_ms=percentile(latencies, 99) / 1e6,
        max_ms=(latencies[-1] if latencies else 0) / 1e6,
        client_cpu_s=client_cpu,
    )


def drive_wrk(
    target: int | str, tickets: Sequence[Ticket], clients: int, max_seconds: float, folder: Path
) -> Drive:
    """wrk against a local port or a base URL (e.g. https://… through NGINX)."""
    data = folder / f"wrk-{clients}.txt"
    with data.open("w") as out:
        for ticket in tickets:
            out.write(f"{ticket[0].token} {json.dumps(update_body(ticket), separators=(',', ':'))}\n")
    threads = min(WRK_THREADS, clients)
    hard_stop = math.ceil(max_seconds) + 30  # the script parks every connection at max_seconds
    command = ["wrk", f"-t{threads}", f"-c{clients}", f"-d{hard_stop}s", "--timeout", "30s"]
    url = target if isinstance(target, str) else f"http://{HOST}:{target}"
    command += ["-s", str(LUA_SCRIPT), url, "--", str(data), str(threads)]
    command += [str(max_seconds)]
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    done, problems = 0, []
    for line in process.stderr:  # wrk stops only at -d by itself: stop it once every thread is done
        if line.startswith("score_updates.lua: thread done"):
            done += 1
            if done == threads:
                process.send_signal(signal.SIGINT)
        else:
            problems.append(line.rstrip())
    output, _ = process.communicate(timeout=60)
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    client_cpu = (children_after.ru_utime - children_before.ru_utime) + (
        children_after.ru_stime - children_before.ru_stime
    )
    marker = "score_updates.lua: "
    lines = [line.removeprefix(marker) for line in output.splitlines() if line.startswith(marker)]
    if process.returncode not in (0, -signal.SIGINT) or not lines:
        raise BenchError(f"wrk failed ({process.returncode}):\n{output}\n" + "\n".join(problems))
    report = json.loads(lines[-1])
    return Drive(
        sent=report["sent"],
        ok=report["ok"],
        statuses=dict(sorted(report["statuses"].items())),
        elapsed_s=report["elapsed_s"],
        p50_ms=report["p50_us"] / 1e3,
        p99_ms=report["p99_us"] / 1e3,
        max_ms=report["max_us"] / 1e3,
        client_cpu_s=client_cpu,
        errors={k: v for k, v in report["errors"].items() if v},
    )


def percentile(ordered: Sequence[int], p: float) -> float:
    """Nearest-rank percentile of an ascending sequence."""
    if not ordered:
        return 0.0
    return float(ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)])


# One phase: tickets, then the timed drive with the server's CPU time and fsyncs around it.


@dataclass
class Phase:
    clients: int
    tickets: int
    drive: Drive
    server_user_s: float
    server_sys_s: float
    fsyncs: int | None
    commits: tuple[float, float] | None  # (commits, writes) from /metrics, where the server exports them
    loadavg: float
    profile: list[tuple[str, float]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        d = self.drive
        n = max(d.sent, 1)
        per = 1e6 / n

        def rate(x: float) -> float:
            return round(x / d.elapsed_s, 2) if d.elapsed_s else 0.0

        return {
            "clients": self.clients,
            "tickets": self.tickets,
            "sent": d.sent,
            "ok": d.ok,
            "statuses": d.statuses,
            "errors": d.errors,
            "stopped_at_time_limit": d.sent < self.tickets,
            "elapsed_s": round(d.elapsed_s, 3),
            "updates_per_s": round(rate(d.ok), 1),
            "p50_ms": round(d.p50_ms, 3),
            "p99_ms": round(d.p99_ms, 3),
            "max_ms": round(d.max_ms, 3),
            "server_cpu_us_per_update": round((self.server_user_s + self.server_sys_s) * per, 1),
            "server_user_us_per_update": round(self.server_user_s * per, 1),
            "server_sys_us_per_update": round(self.server_sys_s * per, 1),
            "server_cores_busy": rate(self.server_user_s + self.server_sys_s),
            "client_cpu_us_per_request": round(d.client_cpu_s * per, 1),
            "fsyncs_per_update": None if self.fsyncs is None else round(self.fsyncs / n, 4),
            "writes_per_commit": round(self.commits[1] / self.commits[0], 2) if self.commits else None,
            "loadavg_1min_before": self.loadavg,
            "profile_top_self": [[frame, round(share, 4)] for frame, share in self.profile],
        }


def run_phase(
    args: argparse.Namespace,
    loop: asyncio.Runner,
    server: Server,
    accounts: Sequence[Account],
    clients: int,
    count_fsyncs: bool,
) -> Phase:
    tickets = loop.run(issue_tickets(server.port, accounts, args.requests))
    commits_before = commit_totals(server)
    loadavg = round(os.getloadavg()[0], 2)
    fsyncs = FsyncCounter(server.pid) if count_fsyncs else None
    profiler = None
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
        profiler = Profiler(server.pid, args.profile / f"score-updates-{clients}.txt")
    cpu_before = server.cpu_times()
    if args.client == "wrk":
        drive = drive_wrk(server.port, tickets, clients, args.max_seconds, server.folder)
    else:
        drive = loop.run(drive_python(server.port, tickets, clients, args.max_seconds))
    cpu_after = server.cpu_times()
    profile = profiler.stop() if profiler else []
    fsync_count = fsyncs.stop() if fsyncs else None
    commits_after, commits = commit_totals(server), None
    if commits_after is not None:
        before = commits_before or (0.0, 0.0)
        if commits_after[0] > before[0]:
            commits = (commits_after[0] - before[0], commits_after[1] - before[1])
    return Phase(
        clients,
        args.requests,
        drive,
        server_user_s=cpu_after[0] - cpu_before[0],
        server_sys_s=cpu_after[1] - cpu_before[1],
        fsyncs=fsync_count,
        commits=commits,
        loadavg=loadavg,
        profile=profile,
    )


def metric_values(server: Server, *names: str) -> dict[str, float]:
    values = {}
    for line in server.get_text("/metrics").splitlines():
        name, _, value = line.rpartition(" ")
        if name in names:
            values[name] = float(value)
    return values


def commit_totals(server: Server) -> tuple[float, float] | None:
    """(commits, writes) so far from `scoreboard_store_commit_batch_writes`, if the server has it."""
    count, total = "scoreboard_store_commit_batch_writes_count", "scoreboard_store_commit_batch_writes_sum"
    values = metric_values(server, count, total)
    return (values[count], values[total]) if count in values and total in values else None


def verify(server: Server, accounts: Sequence[Account], expected: int) -> dict[str, Any]:
    """The scores must add up to the 200s the clients counted, exactly, and the board be in order."""
    limit = min(100, len(accounts))
    entries = server.get(f"/api/leaderboard?limit={limit}")["entries"]
    scores = [entry["score"] for entry in entries]
    if len(accounts) <= limit:
        total = sum(scores)
    else:  # the board shows at most 100 users: ask for every user's score
        total = sum(server.get(f"/api/users/{a.user_id}/score")["score"] for a in accounts)
    applied = 'scoreboard_score_updates_total{outcome="applied"}'
    ordered = scores == sorted(scores, reverse=True)
    return {
        "expected_ok": expected,
        "leaderboard_total": sum(scores),
        "scores_total": total,
        "metrics_applied": metric_values(server, applied).get(applied),
        "board_ordered": ordered,
        "passed": total == expected and ordered,
    }


# Report.


def filesystem_of(path: Path) -> str:
    best, kind, where = "", "unknown", str(path.resolve())
    for line in Path("/proc/mounts").read_text().splitlines():
        parts = line.split()
        if len(parts) > 2 and where.startswith(parts[1]) and len(parts[1]) > len(best):
            best, kind = parts[1], parts[2]
    return kind


def environment(packages: Sequence[str] = ()) -> dict[str, Any]:
    """The machine, Python, commit and (optionally) package versions a result was measured with."""
    model = next(
        (
            line.partition(":")[2].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )

    def git(*command: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(REPOSITORY), *command], capture_output=True, text=True)
        except OSError:
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    versions = {}
    for package in packages:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[package] = importlib.metadata.version(package)
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "packages": versions,
        "commit": git("rev-parse", "HEAD"),
        "src_modified": bool(git("status", "--porcelain", "--", "src")),
        "clock": time.get_clock_info("perf_counter").implementation,
    }


def print_table(phases: Sequence[Phase]) -> None:
    header = (
        f"{'clients':>7} {'updates':>8} {'updates/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}"
        f" {'srv CPU µs/upd':>14} {'(user+sys)':>11} {'srv cores':>9} {'cli CPU µs/req':>14}"
        f" {'fsyncs/upd':>10} {'load':>5}"
    )
    print(header)
    print("-" * len(header))
    for phase in phases:
        s = phase.summary()
        fsyncs = "n/a" if s["fsyncs_per_update"] is None else f"{s['fsyncs_per_update']:.3f}"
        split = f"{s['server_user_us_per_update']:.0f}+{s['server_sys_us_per_update']:.0f}"
        print(
            f"{s['clients']:>7} {s['ok']:>8} {s['updates_per_s']:>10.1f} {s['p50_ms']:>8.2f}"
            f" {s['p99_ms']:>8.2f} {s['max_ms']:>8.2f} {s['server_cpu_us_per_update']:>14.0f} {split:>11}"
            f" {s['server_cores_busy']:>9.2f} {s['client_cpu_us_per_request']:>14.0f} {fsyncs:>10}"
            f" {s['loadavg_1min_before']:>5.2f}"
        )
        if s["stopped_at_time_limit"]:
            print(f"{'':>7} stopped at the time limit: {s['sent']} of {s['tickets']} tickets sent")
        if s["writes_per_commit"] is not None:
            print(f"{'':>7} group commit: {s['writes_per_commit']} writes per commit (from /metrics)")
        for frame, share in phase.profile:
            print(f"{'':>7} {share:6.1%}  {frame}")


# Token algorithms: the server signs with an HS256 secret (the default) or a generated key pair.

TOKEN_ALGORITHMS = ("HS256", "EdDSA", "RS256")


def private_key(algorithm: str) -> Any:
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    if algorithm == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def token_env(algorithm: str, folder: Path) -> dict[str, str]:
    """Server settings for tokens signed with `algorithm` (a fresh key file for EdDSA and RS256)."""
    if algorithm == "HS256":
        return {}
    from cryptography.hazmat.primitives import serialization

    path = folder / "signing-key.pem"
    path.write_bytes(
        private_key(algorithm).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return {"SCOREBOARD_JWT_PRIVATE_KEY_FILE": str(path), "SCOREBOARD_JWT_ALGORITHM": algorithm}


def verify_cost_us(algorithm: str, count: int = 2000) -> float:
    """CPU µs the server's own AccessTokens spend verifying a token it has not seen before (signature
    and claims; a token seen before is answered from the verified-token cache)."""
    from cryptography.hazmat.primitives import serialization

    from scoreboard.auth.keys import asymmetric_key, symmetric_key
    from scoreboard.auth.tokens import AccessTokens

    if algorithm == "HS256":
        key = symmetric_key(os.urandom(32).hex())
    else:
        pem = private_key(algorithm).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        key = asymmetric_key(pem, algorithm)
    now = int(time.time())
    issuer = AccessTokens(key, "scoreboard", "scoreboard", 900)
    tokens = [issuer.issue(str(i), ["user"], "", now).token for i in range(count)]
    verifier = AccessTokens(key, "scoreboard", "scoreboard", 900)
    started = time.process_time()
    for token in tokens:
        verifier.verify(token, now)
    return (time.process_time() - started) / count * 1e6


def print_algorithm_comparison(documents: dict[str, dict[str, Any]]) -> None:
    reference = "HS256" if "HS256" in documents else next(iter(documents))
    print(f"\nby token algorithm (servers run one after the other; ratios against {reference}):")
    header = f"{'algorithm':>9} {'clients':>7} {'updates/s':>10} {'ratio':>6} {'srv CPU µs/upd':>14} {'verify µs/new token':>19}"
    print(header)
    print("-" * len(header))
    base = {p["clients"]: p for p in documents[reference]["phases"]}
    for algorithm, document in documents.items():
        for phase in document["phases"]:
            reference_rate = base[phase["clients"]]["updates_per_s"] or 1.0
            print(
                f"{algorithm:>9} {phase['clients']:>7} {phase['updates_per_s']:>10.1f}"
                f" {phase['updates_per_s'] / reference_rate:>6.2f} {phase['server_cpu_us_per_update']:>14.0f}"
                f" {document['verify_us_per_new_token']:>19.1f}"
            )


# Command line.


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add("--clients", default="1,64", help="comma-separated concurrent connections, one phase each (1,64)")
    add("--requests", type=int, default=4000, help="tickets to redeem per phase (4000)")
    add("--users", type=int, default=64, help="accounts the tickets are dealt over (64)")
    add("--max-seconds", type=float, default=15.0, help="time limit of a phase (15)")
    add(
        "--client",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="load generator (auto: wrk if found)",
    )
    add("--json", type=Path, help="also write the results to this file")
    add("--profile", type=Path, help="folder for a py-spy profile of each phase (needs py-spy)")
    add("--env", action="append", default=[], metavar="NAME=VALUE", help="extra server setting (repeatable)")
    add(
        "--token-algorithms",
        default="HS256",
        help="comma-separated access-token algorithms, one server each, compared side by side"
        f" (HS256; choose from {','.join(TOKEN_ALGORITHMS)})",
    )
    add(
        "--rate-limits",
        default="off",
        help="comma-separated off/on, one server each, e.g. off,on,off,on to compare side by side (off)",
    )
    add("--no-perf", action="store_true", help="do not count fsyncs with `perf stat`")
    add("--keep", action="store_true", help="keep the temporary data folder (database, server log)")
    args = parser.parse_args(argv)
    try:
        args.clients = [int(c) for c in args.clients.split(",") if c.strip()]
    except ValueError:
        parser.error("--clients takes whole numbers, e.g. 1,64")
    if not args.clients or min(args.clients) < 1 or args.users < 1:
        parser.error("--clients and --users must be positive")
    if args.requests < max(args.clients):
        parser.error("--requests must be at least the largest --clients (a ticket per connection)")
    args.token_algorithms = [a.strip() for a in args.token_algorithms.split(",") if a.strip()]
    if not args.token_algorithms or set(args.token_algorithms) - set(TOKEN_ALGORITHMS):
        parser.error(f"--token-algorithms takes some of {','.join(TOKEN_ALGORITHMS)}")
    args.rate_limits = [r.strip() for r in args.rate_limits.split(",") if r.strip()]
    if not args.rate_limits or set(args.rate_limits) - {"off", "on"}:
        parser.error("--rate-limits takes off and on, e.g. off,on")
    if any("=" not in item for item in args.env):
        parser.error("--env takes NAME=VALUE")
    args.env = dict(item.split("=", 1) for item in args.env)
    if args.client == "auto":
        args.client = "wrk" if shutil.which("wrk") else "python"
    elif args.client == "wrk" and shutil.which("wrk") is None:
        parser.error("wrk is not on PATH (Debian: apt-get install wrk)")
    return args


def describe_client(kind: str, loop_name: str) -> str:
    if kind == "python":
        return f"python, raw HTTP/1.1 over {loop_name}, one process"
    version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split(" [")[0]
    return f"{version}, {WRK_THREADS} thread, bench/score_updates.lua"


# Rate limiting "on": the default limits' shape (per user and per address, two windows each), so every
# update pays for the same four counter checks, but amounts no run reaches: what is measured is the
# cost of the bookkeeping, not refusals.
RATE_LIMITS_ON = {
    "SCOREBOARD_RATE_LIMIT_SCORE_UPDATES": "1000000/second;60000000/minute",
    "SCOREBOARD_RATE_LIMIT_PER_ADDRESS": "1000000/second;60000000/minute",
}


@dataclass
class Run:
    label: str
    phases: list[Phase]
    verification: dict[str, Any]
    refused: int
    warmup: Drive


def serve_and_measure(
    args: argparse.Namespace, loop: asyncio.Runner, folder: Path, label: str, env: dict[str, str]
) -> Run:
    """One server with `env`: accounts, warm-up, a phase per --clients count, verification."""
    folder.mkdir(parents=True, exist_ok=True)
    with Server(folder, env) as server:
        print(f"[{label}] server: pid {server.pid} on {HOST}:{server.port}, data in {folder}")
        started = time.perf_counter()
        accounts = loop.run(create_accounts(server.port, args.users))
        print(f"[{label}] setup: {len(accounts)} accounts ready in {time.perf_counter() - started:.1f} s")
        warmup_tickets = loop.run(issue_tickets(server.port, accounts, WARMUP_UPDATES))
        warmup = loop.run(drive_python(server.port, warmup_tickets, 8, 60.0))
        count_fsyncs = not args.no_perf and FsyncCounter.works(server.pid)
        phases = []
        for clients in args.clients:
            phase = run_phase(args, loop, server, accounts, clients, count_fsyncs)
            print(
                f"[{label}] phase: {clients} clients, {phase.drive.ok} updates in {phase.drive.elapsed_s:.2f} s"
            )
            phases.append(phase)
        expected = warmup.ok + sum(p.drive.ok for p in phases)
        check = verify(server, accounts, expected)
    refused = warmup.sent - warmup.ok + sum(p.drive.sent - p.drive.ok for p in phases)
    return Run(label, phases, check, refused, warmup)


def report_run(run: Run) -> None:
    check = run.verification
    print(
        f"[{run.label}] verification {'OK' if check['passed'] else 'MISMATCH'}: the scores add up to"
        f" {check['scores_total']}, the clients counted {check['expected_ok']} answers 200 (warm-up"
        f" included); /metrics applied: {check['metrics_applied']}; board in order: {check['board_ordered']}"
    )
    if run.refused:
        print(
            f"[{run.label}] FAILED: {run.refused} score updates were not answered 200 (statuses are in --json)"
        )


def print_comparison(runs: Sequence[Run]) -> None:
    """Mean updates/s and CPU per update by rate-limit setting, and `on` relative to `off`."""
    print("\nrate limiting, side by side (mean of the runs of each setting)")
    for clients in {p.clients for r in runs for p in r.phases}:
        means = {}
        for label in ("off", "on"):
            summaries = [p.summary() for r in runs if r.label.startswith(label) for p in r.phases]
            summaries = [s for s in summaries if s["clients"] == clients]
            if summaries:
                rate = sum(s["updates_per_s"] for s in summaries) / len(summaries)
                cpu = sum(s["server_cpu_us_per_update"] for s in summaries) / len(summaries)
                means[label] = (rate, cpu)
                each = ", ".join(f"{s['updates_per_s']:.0f}" for s in summaries)
                print(
                    f"{clients:>4} clients, limits {label:>3}: {rate:8.1f} updates/s ({each}), {cpu:6.0f} µs CPU/update"
                )
        if len(means) == 2:
            print(
                f"{clients:>4} clients, on/off: throughput {means['on'][0] / means['off'][0]:.3f},"
                f" CPU per update {means['on'][1] / means['off'][1]:.3f}"
            )


def run(args: argparse.Namespace, folder: Path) -> int:
    loop_factory, loop_name = event_loop_factory()
    client = describe_client(args.client, loop_name)
    print(f"client: {client}; {os.cpu_count()} CPUs")
    runs = []
    variants = list(itertools.product(args.token_algorithms, args.rate_limits))
    with asyncio.Runner(loop_factory=loop_factory) as loop:
        for i, (algorithm, setting) in enumerate(variants):
            here = folder / f"run-{i + 1}"
            here.mkdir(parents=True, exist_ok=True)
            env = {**token_env(algorithm, here), **args.env, **(RATE_LIMITS_ON if setting == "on" else {})}
            label = f"{setting}#{i + 1}" if len(args.rate_limits) > 1 else setting
            if len(args.token_algorithms) > 1:
                label += f"/{algorithm}"
            runs.append(serve_and_measure(args, loop, here, label, env))
    for each in runs:
        print(f"\nscore updates [{each.label}], client: {client}")
        print_table(each.phases)
        report_run(each)
    if len(args.rate_limits) > 1 and len({r.label.split("#")[0] for r in runs}) > 1:
        print_comparison(runs)
    if len(args.token_algorithms) > 1:
        by_algorithm = {
            algorithm: {
                "phases": [p.summary() for r in runs if r.label.endswith(f"/{algorithm}") for p in r.phases],
                "verify_us_per_new_token": round(verify_cost_us(algorithm), 1),
            }
            for algorithm in args.token_algorithms
        }
        print_algorithm_comparison(by_algorithm)
    if args.json:
        document = {
            "benchmark": "score_updates",
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": " ".join(sys.argv),
            "client": client,
            "environment": environment(),
            "filesystem": filesystem_of(folder),
            "settings": {k: v for k, v in vars(args).items() if k not in {"json", "profile"}},
            "runs": [
                {
                    "label": r.label,
                    "warmup": asdict(r.warmup),
                    "phases": [p.summary() for p in r.phases],
                    "verification": r.verification,
                }
                for r in runs
            ],
        }
        args.json.write_text(json.dumps(document, indent=2, default=str) + "\n")
        print(f"results written to {args.json}")
    return 0 if all(r.verification["passed"] and not r.refused for r in runs) else 1


def in_scratch_folder(
    name: str, args: argparse.Namespace, run: Callable[[argparse.Namespace, Path], int]
) -> int:
    """`run(args, folder)` in a fresh temporary folder, removed afterwards unless --keep; a BenchError
    is one line and exit status 2."""
    folder = Path(tempfile.mkdtemp(prefix=f"scoreboard-{name}-"))
    try:
        return run(args, folder)
    except BenchError as error:
        print(f"{name}: {error}", file=sys.stderr)
        return 2
    finally:
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    return in_scratch_folder("score_updates", parse_args(argv), run)


if __name__ == "__main__":
    raise SystemExit(main())
