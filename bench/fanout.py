"""Fan-out benchmark: one score update's 200 → the last of N WebSocket subscribers receiving it.

1. Starts the server on a free 127.0.0.1 port, embedded (a fresh SQLite file in a temporary folder,
   in-memory cache and broker), rate limits off, the open action policy (no tickets needed).
   Each --variants item is its own fresh server: `serve` is `scoreboard serve` itself (uvicorn's
   default WebSocket implementation, websockets-sansio); `websockets`, `websockets-sansio` and
   `wsproto` run `python -m uvicorn scoreboard.app:create_app --factory --ws NAME` with the same
   settings as `scoreboard serve`. A `:none` suffix (e.g. `serve:none`) makes the clients offer no
   permessage-deflate; by default they offer it, as browsers and the `websockets` client do.
2. Registers 10 accounts and gives each a point, so the top 10 is full and every later update changes
   it (a score in the top 10 rises) and is broadcast. The frame is about 1 KB (the size is reported).
3. Reads the server's VmRSS, then opens --subscribers WebSocket connections (the `websockets` asyncio
   client) from --processes separate subscriber processes, in batches, each subscribing and waiting
   for its snapshot; after --idle seconds reads VmRSS again: (after - before) / subscribers = memory
   per idle connection.
4. Sends --updates score updates over one keep-alive HTTP connection, one every --interval seconds,
   each waiting for its 200. Every subscriber's receive loop records when each seq arrived
   (time.perf_counter_ns, CLOCK_MONOTONIC on Linux, so comparable across the processes). Per update:
   200 → last subscriber, 200 → median subscriber, request sent → 200. The server's utime + stime
   (/proc/PID/stat) over the update phase / updates = CPU per broadcast (HTTP update included).
5. Checks every subscriber got every seq in order. Conflation (a snapshot in place of missed updates,
   allowed under overload) is reported; a seq missing without a snapshot in its place, or a seq out of
   order, fails the run.

Exit status: 0 when all is well, 1 when a subscriber missed updates or could not connect, 2 when the
benchmark could not run.

    .venv/bin/python bench/fanout.py [--subscribers 1000] [--updates 50] [--variants serve] [--json FILE]

docs/benchmarks.md explains the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import math
import multiprocessing
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import Any

# The HTTP helpers and the record of where a result was measured are shared with the update benchmark.
from score_updates import BenchError, encode_request, environment

from scoreboard.server_options import WS_MAX_SIZE

HOST = "127.0.0.1"
PASSWORD = "bench-password-0123"
REPOSITORY = Path(__file__).resolve().parent.parent
BOARD_SIZE = 10
# With 10 players of this display-name length the update frame is about 1 KB, the size the project
# brief's comparison points were measured with.
DISPLAY_NAME = "Player {:02d}"

PING_INTERVAL_SECONDS = 20.0  # uvicorn's default keepalive ping: the update phase should end before it
IMPLEMENTATIONS = ("serve", "websockets-sansio", "websockets", "wsproto")
UPDATE, SNAPSHOT, OTHER = 0, 1, 2
_SEQ = re.compile(r'"epoch":(-?\d+),"seq":(\d+)')
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)
_CLOCK_TICK = os.sysconf("SC_CLK_TCK")


def now_ns() -> int:
    return time.perf_counter_ns()


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


# A minimal HTTP/1.1 keep-alive client: setup calls and the timed score updates.


class Http:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Http:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), 10)
        return cls(reader, writer)

    async def send(self, raw: bytes) -> tuple[int, bytes]:
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = _CONTENT_LENGTH.search(head)
        body = await self.reader.readexactly(int(length.group(1))) if length else b""
        return int(head[9:12]), body

    async def call(self, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
        status, answer = await asyncio.wait_for(self.send(encode_request(method, path, body, token)), 30)
        if status >= 300:
            raise BenchError(f"{method} {path} answered {status}: {answer[:300]!r}")
        return json.loads(answer)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


@dataclass
class Account:
    user_id: str
    token: str


async def create_accounts(port: int, count: int) -> list[Account]:
    """Register and log in `count` players, then give each one point so all are on the board."""
    tag = uuid.uuid4().hex[:6]

    async def one(i: int) -> Account:
        http = await Http.open(port)
        try:
            name = f"fan{tag}{i:02d}"
            body = {"username": name, "password": PASSWORD, "display_name": DISPLAY_NAME.format(i)}
            user = await http.call("POST", "/api/auth/register", body)
            pair = await http.call("POST", "/api/auth/login", {"username": name, "password": PASSWORD})
            account = Account(str(user["user_id"]), str(pair["access_token"]))
            await http.call("POST", "/api/score/update", update_body(account), account.token)
            return account
        finally:
            await http.close()

    results: list[Account] = []
    for start in range(0, count, 4):  # argon2 is CPU-bound: more at once only queue in the server
        results += await asyncio.gather(*(one(i) for i in range(start, min(count, start + 4))))
    return results


def update_body(account: Account) -> dict[str, str]:
    return {"user_id": account.user_id, "action_id": str(uuid.uuid4())}


@dataclass
class Sent:
    sent_ns: int
    ok_ns: int
    status: int


async def drive_updates(port: int, accounts: Sequence[Account], count: int, interval: float) -> list[Sent]:
    """`count` updates, one every `interval` seconds (or right after the previous 200 if later)."""
    requests = [
        encode_request("POST", "/api/score/update", update_body(a), a.token)
        for a in (accounts[i % len(accounts)] for i in range(count))
    ]
    http = await Http.open(port)
    results = []
    try:
        start = time.perf_counter()
        for i, raw in enumerate(requests):
            delay = start + i * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            sent = now_ns()
            status, _ = await asyncio.wait_for(http.send(raw), 30)
            results.append(Sent(sent, now_ns(), status))
    finally:
        await http.close()
    return results


# The server under test.


class Server:
    """The service as a child process with its own data folder; stopped on exit."""

    def __init__(self, folder: Path, implementation: str) -> None:
        self.folder = folder
        self.implementation = implementation
        self.port = free_port()
        self.log_path = folder / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SCOREBOARD_")}
        env.update(
            SCOREBOARD_DATABASE_URL=f"sqlite:///{self.folder / 'scoreboard.db'}",
            SCOREBOARD_JWT_SECRET=os.urandom(32).hex(),
            SCOREBOARD_ACCESS_TOKEN_TTL_SECONDS="3600",
            SCOREBOARD_ACTION_POLICY="open",
            SCOREBOARD_RATE_LIMIT_SCORE_UPDATES="off",
            SCOREBOARD_RATE_LIMIT_ACTIONS="off",
            SCOREBOARD_RATE_LIMIT_LOGIN="off",
            SCOREBOARD_RATE_LIMIT_REGISTER="off",
            SCOREBOARD_LOG_FORMAT="json",
            SCOREBOARD_LOG_LEVEL="warning",
        )
        return env

    def command(self) -> list[str]:
        script = Path(sys.executable).with_name("scoreboard")
        scoreboard = [str(script)] if script.exists() else [sys.executable, "-m", "scoreboard.cli"]
        if self.implementation == "serve":
            return [*scoreboard, "serve", "--host", HOST, "--port", str(self.port)]
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
            "--proxy-headers",
        ]

    def __enter__(self) -> Server:
        env = self.environment()
        scoreboard = self.command()[0] if self.implementation == "serve" else None
        with self.log_path.open("wb") as log:
            if scoreboard is None:  # uvicorn does not migrate: do what `scoreboard serve` does first
                script = Path(sys.executable).with_name("scoreboard")
                migrate = [str(script)] if script.exists() else [sys.executable, "-m", "scoreboard.cli"]
                subprocess.run(
                    [*migrate, "migrate"], cwd=self.folder, env=env, stdout=log, stderr=log, check=True
                )
            self.process = subprocess.Popen(
                self.command(), cwd=self.folder, env=env, stdout=log, stderr=subprocess.STDOUT
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

    def _wait_ready(self, timeout: float = 30.0) -> None:
        give_up = time.monotonic() + timeout
        while time.monotonic() < give_up:
            if self.process is not None and self.process.poll() is not None:
                raise BenchError(f"the server exited with {self.process.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(OSError, ValueError):
                if json.loads(self.get_text("/readyz")).get("status") == "ready":
                    return
            time.sleep(0.1)
        raise BenchError(f"the server was not ready after {timeout:.0f} s:\n{self.log_tail()}")

    def get_text(self, path: str) -> str:
        with urllib.request.urlopen(f"http://{HOST}:{self.port}{path}", timeout=10) as answer:
            return str(answer.read().decode())

    def metrics(self, *names: str) -> dict[str, float]:
        values = {}
        for line in self.get_text("/metrics").splitlines():
            name, _, value = line.rpartition(" ")
            if name in names:
                values[name] = float(value)
        return values

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise BenchError("no VmRSS in /proc/PID/status")

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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def raise_fd_limit(needed: int) -> int:
    """Raise the soft open-files limit (inherited by the server and the subscriber processes)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return int(soft)


# Subscriber processes: each opens its share of the connections and records every arrival.


@dataclass
class Subscriber:
    """One WebSocket connection: the seq of its snapshot and every message after it, timestamped."""

    ws: Any
    snapshot_seq: int
    events: list[tuple[int, int, int]] = field(default_factory=list)  # (kind, seq, arrival ns)
    latest: int = 0
    target: int | None = None
    reached: asyncio.Event = field(default_factory=asyncio.Event)
    closed: str | None = None
    update_bytes: int = 0

    async def receive(self) -> None:
        from websockets.exceptions import ConnectionClosed

        events, reached = self.events, self.reached
        try:
            async for message in self.ws:
                arrived = now_ns()
                kind, seq = classify(message)
                events.append((kind, seq, arrived))
                if kind == UPDATE and not self.update_bytes:
                    self.update_bytes = len(message.encode() if isinstance(message, str) else message)
                if seq > self.latest:
                    self.latest = seq
                if self.target is not None and self.latest >= self.target:
                    reached.set()
        except ConnectionClosed as closed:
            self.closed = f"{closed.rcvd.code if closed.rcvd else 'no close frame'}"
        finally:
            reached.set()  # nothing more will come: do not make the process wait for it


def classify(message: str | bytes) -> tuple[int, int]:
    """(kind, seq) of a server message, cheaply: the encoder writes `type` first, then epoch, seq."""
    text = message if isinstance(message, str) else message.decode()
    if text.startswith('{"type":"update"'):
        kind = UPDATE
    elif text.startswith('{"type":"snapshot"'):
        kind = SNAPSHOT
    else:
        kind = UPDATE if '"type":"update"' in text else SNAPSHOT if '"type":"snapshot"' in text else OTHER
    found = _SEQ.search(text)
    return kind, int(found.group(2)) if found else -1


async def open_subscriber(url: str, compression: str | None, timeout: float) -> tuple[Subscriber, int]:
    from websockets.asyncio.client import connect

    ws = await connect(
        url,
        compression=compression,
        open_timeout=timeout,
        ping_interval=None,  # the server pings; the client only answers
        close_timeout=2,
        max_size=WS_MAX_SIZE,
    )
    try:
        await asyncio.wait_for(ws.send('{"type":"subscribe","channel":"scoreboard_updates"}'), timeout)
        first = await asyncio.wait_for(ws.recv(), timeout)
    except BaseException:
        await ws.close()
        raise
    kind, seq = classify(first)
    if kind != SNAPSHOT:
        await ws.close()
        raise BenchError(f"the first message was not a snapshot: {str(first)[:200]}")
    return Subscriber(ws, seq, latest=seq), len(first.encode() if isinstance(first, str) else first)


async def subscriber_main(pipe: Pipe, url: str, count: int, batch: int, compression: str | None) -> None:
    subscribers: list[Subscriber] = []
    failures: Counter[str] = Counter()
    started = time.perf_counter()
    snapshot_bytes = 0
    for start in range(0, count, batch):
        size = min(batch, count - start)
        results = await asyncio.gather(
            *(open_subscriber(url, compression, 10.0) for _ in range(size)), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                failures[f"{type(result).__name__}: {result}"[:200]] += 1
            else:
                subscribers.append(result[0])
                snapshot_bytes = result[1]
    tasks = [asyncio.create_task(s.receive()) for s in subscribers]
    pipe.send(
        (
            "ready",
            {
                "connected": len(subscribers),
                "failures": dict(failures),
                "snapshot_seqs": sorted({s.snapshot_seq for s in subscribers}),
                "snapshot_bytes": snapshot_bytes,
                "connect_s": round(time.perf_counter() - started, 3),
            },
        )
    )
    command, target, timeout = await asyncio.to_thread(pipe.recv)
    assert command == "expect"
    for s in subscribers:
        s.target = target
        if s.latest >= target or s.closed is not None:
            s.reached.set()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*(s.reached.wait() for s in subscribers)), timeout)
    timed_out = any(s.latest < target and s.closed is None for s in subscribers)
    pipe.send(("reached", timed_out))  # first, so that the parent reads our CPU time before the report
    command, *_ = await asyncio.to_thread(pipe.recv)
    assert command == "report"
    pipe.send(
        (
            "done",
            {
                "timed_out": timed_out,
                "update_bytes": max((s.update_bytes for s in subscribers), default=0),
                "subscribers": [(s.snapshot_seq, s.events, s.closed) for s in subscribers],
            },
        )
    )
    command, *_ = await asyncio.to_thread(pipe.recv)  # "close": stay alive until the parent is done
    for s in subscribers:
        s.ws.transport.abort()  # no closing handshakes to time: the measurement is over
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def subscriber_process(pipe: Pipe, url: str, count: int, batch: int, compression: str | None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        try:
            runner.run(subscriber_main(pipe, url, count, batch, compression))
        except (EOFError, BrokenPipeError):
            return  # the parent is gone


class Subscribers:
    """--processes subscriber processes sharing --subscribers connections."""

    def __init__(self, url: str, total: int, processes: int, batch: int, compression: str | None) -> None:
        context = multiprocessing.get_context("spawn")
        self.pipes: list[Pipe] = []
        self.processes: list[Any] = []
        shares = [total // processes + (1 if i < total % processes else 0) for i in range(processes)]
        for share in shares:
            parent, child = context.Pipe()
            process = context.Process(
                target=subscriber_process,
                args=(child, url, share, batch, compression),
                daemon=True,
            )
            process.start()
            child.close()
            self.pipes.append(parent)
            self.processes.append(process)

    def receive_all(self, expected: str, deadline: float) -> list[dict[str, Any]]:
        answers = []
        for pipe, process in zip(self.pipes, self.processes, strict=True):
            if not pipe.poll(max(0.0, deadline - time.monotonic())):
                raise BenchError(f"a subscriber process did not answer {expected!r} before the deadline")
            try:
                kind, payload = pipe.recv()
            except EOFError:
                raise BenchError(f"subscriber process {process.pid} exited ({process.exitcode})") from None
            assert kind == expected, kind
            answers.append(payload)
        return answers

    def send_all(self, message: tuple[Any, ...]) -> None:
        for pipe in self.pipes:
            pipe.send(message)

    def cpu_seconds(self) -> float:
        return sum(cpu_seconds(p.pid) for p in self.processes)

    def stop(self) -> None:
        for pipe in self.pipes:
            with contextlib.suppress(OSError):
                pipe.send(("close",))
        for process in self.processes:
            process.join(timeout=5)
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)
        for pipe in self.pipes:
            pipe.close()


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


# Analysis.


@dataclass
class Check:
    subscribers: int = 0
    complete: int = 0  # got every seq, as an update or covered by a later snapshot
    missing: int = 0  # seqs skipped without a snapshot in their place, over all subscribers
    out_of_order: int = 0  # a seq older than one already received
    conflated: int = 0  # updates replaced by a snapshot (allowed under overload)
    snapshots: int = 0  # snapshots after the first
    other: int = 0  # messages neither update nor snapshot (errors)
    closed: Counter[str] = field(default_factory=Counter)

    @property
    def passed(self) -> bool:
        return self.missing == 0 and self.out_of_order == 0 and self.complete == self.subscribers


def check_and_time(
    records: Sequence[tuple[int, list[tuple[int, int, int]], str | None]], first: int, last: int
) -> tuple[Check, dict[int, list[int]]]:
    """Order checks per subscriber; per seq, when each subscriber's board first reflected it (the
    first message with that seq or a newer one: the update itself, or a snapshot that replaced it)."""
    check = Check(subscribers=len(records))
    arrivals: dict[int, list[int]] = {seq: [] for seq in range(first, last + 1)}
    for snapshot_seq, events, closed in records:
        expected = snapshot_seq + 1
        covered = snapshot_seq
        for kind, seq, arrived in events:
            if kind == OTHER:
                check.other += 1
                continue
            if kind == SNAPSHOT:
                check.snapshots += 1
                if seq >= expected:
                    check.conflated += seq - expected + 1
                    expected = seq + 1
                elif seq < expected - 1:
                    check.out_of_order += 1
            elif seq == expected:
                expected += 1
            elif seq > expected:
                check.missing += seq - expected
                expected = seq + 1
            else:
                check.out_of_order += 1
            while covered < seq:
                covered += 1
                if covered in arrivals:
                    arrivals[covered].append(arrived)
        if expected <= last:
            check.missing += last - expected + 1
        else:
            check.complete += 1
        if closed is not None:
            check.closed[closed] += 1
    return check, arrivals


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (with 50 values, p99 is the largest)."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return float(ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)])


def ms(ns: float) -> float:
    return round(ns / 1e6, 3)


# One variant: a fresh server, the connections, the updates.


@dataclass
class Variant:
    implementation: str
    compression: str | None

    @classmethod
    def parse(cls, text: str) -> Variant:
        name, _, option = text.partition(":")
        if name not in IMPLEMENTATIONS or option not in ("", "none", "deflate"):
            raise ValueError(text)
        return cls(name, None if option == "none" else "deflate")

    @property
    def label(self) -> str:
        return self.implementation + ("" if self.compression else ":none")

    def describe(self) -> str:
        server = (
            "scoreboard serve (uvicorn --ws auto = websockets-sansio)"
            if self.implementation == "serve"
            else f"uvicorn --ws {self.implementation}"
        )
        offer = "clients offer permessage-deflate" if self.compression else "no compression offered"
        return f"{server}; {offer}"


def run_variant(args: argparse.Namespace, variant: Variant, folder: Path) -> dict[str, Any]:
    folder.mkdir()
    started = time.monotonic()
    deadline = started + args.deadline
    loop_factory = event_loop_factory()
    with (
        asyncio.Runner(loop_factory=loop_factory) as runner,
        Server(folder, variant.implementation) as server,
    ):
        print(f"[{variant.label}] server pid {server.pid} on {HOST}:{server.port}: {variant.describe()}")
        accounts = runner.run(create_accounts(server.port, BOARD_SIZE))
        time.sleep(0.5)
        rss_before = server.rss_kib()
        url = f"ws://{HOST}:{server.port}/ws"
        connecting = time.monotonic()
        subscribers = Subscribers(url, args.subscribers, args.processes, args.batch, variant.compression)
        profiler = None
        try:
            ready = subscribers.receive_all("ready", deadline)
            connected = sum(r["connected"] for r in ready)
            failures: Counter[str] = Counter()
            for r in ready:
                failures.update(r["failures"])
            seqs = sorted({s for r in ready for s in r["snapshot_seqs"]})
            connect_s = max(r["connect_s"] for r in ready)
            print(f"[{variant.label}] {connected} subscribed in {connect_s:.1f} s; snapshot seqs {seqs}")
            for failure, n in failures.most_common(5):
                print(f"[{variant.label}]   {n} failed: {failure}")
            if not connected:
                raise BenchError("no subscriber could connect")
            time.sleep(args.idle)
            rss_idle = server.rss_kib()
            first_connection_age = time.monotonic() - connecting
            if args.profile:
                args.profile.mkdir(parents=True, exist_ok=True)
                profiler = Profiler(server.pid, args.profile / f"fanout-{variant.label}.txt")
            names = (
                "scoreboard_broadcast_duration_seconds_sum",
                "scoreboard_broadcast_duration_seconds_count",
            )
            metrics_before = server.metrics(*names)
            cpu_before, client_cpu_before = server.cpu_seconds(), subscribers.cpu_seconds()
            machine_before, own_before = machine_cpu(), time.process_time()
            phase_started = time.monotonic()
            if phase_started + args.updates * args.interval + 5 > deadline:
                raise BenchError(f"no time left for the updates before the --deadline of {args.deadline} s")
            sent = runner.run(drive_updates(server.port, accounts, args.updates, args.interval))
            base = seqs[-1]
            subscribers.send_all(("expect", base + args.updates, max(1.0, deadline - time.monotonic())))
            subscribers.receive_all("reached", deadline + 10)
            cpu_after, client_cpu_after = server.cpu_seconds(), subscribers.cpu_seconds()
            machine_after, own_after = machine_cpu(), time.process_time()
            update_phase_s = time.monotonic() - phase_started
            subscribers.send_all(("report",))
            done = subscribers.receive_all("done", time.monotonic() + 30)
            metrics_after = server.metrics(*names)
            rss_after = server.rss_kib()
            profile = profiler.stop() if profiler else None
            profiler = None
        finally:
            if profiler is not None:
                profiler.stop()
            subscribers.stop()

    records = [record for d in done for record in d["subscribers"]]
    check, arrivals = check_and_time(records, base + 1, base + args.updates)
    to_last, to_median, to_ok, send_to_last = [], [], [], []
    incomplete = 0
    for i, s in enumerate(sent):
        times = arrivals[base + 1 + i]
        to_ok.append(s.ok_ns - s.sent_ns)
        if len(times) < len(records):
            incomplete += 1
        if times:
            to_last.append(max(times) - s.ok_ns)
            to_median.append(statistics.median(times) - s.ok_ns)
            send_to_last.append(max(times) - s.sent_ns)
    broadcasts = metrics_after.get(names[1], 0) - metrics_before.get(names[1], 0)
    broadcast_sum = metrics_after.get(names[0], 0) - metrics_before.get(names[0], 0)
    statuses = Counter(s.status for s in sent)
    update_bytes = max(d["update_bytes"] for d in done)
    result = {
        "variant": variant.label,
        "description": variant.describe(),
        "subscribers": args.subscribers,
        "connected": connected,
        "connect_failures": dict(failures),
        "connect_s": connect_s,
        "frame_bytes": update_bytes,  # an update's JSON text, before permessage-deflate
        "updates": len(sent),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "interval_s": args.interval,
        "p50_ok_to_last_ms": ms(percentile(to_last, 50)),
        "p99_ok_to_last_ms": ms(percentile(to_last, 99)),
        "max_ok_to_last_ms": ms(max(to_last, default=math.nan)),
        "p50_ok_to_median_ms": ms(percentile(to_median, 50)),
        "p99_ok_to_median_ms": ms(percentile(to_median, 99)),
        "p50_send_to_ok_ms": ms(percentile(to_ok, 50)),
        "p99_send_to_ok_ms": ms(percentile(to_ok, 99)),
        "p50_send_to_last_ms": ms(percentile(send_to_last, 50)),
        "p99_send_to_last_ms": ms(percentile(send_to_last, 99)),
        "server_broadcast_mean_ms": round(broadcast_sum / broadcasts * 1e3, 3) if broadcasts else None,
        "server_broadcasts_timed": broadcasts,
        "rss_before_kib": rss_before,
        "rss_idle_kib": rss_idle,
        "rss_after_updates_kib": rss_after,
        "kib_per_connection": round((rss_idle - rss_before) / max(connected, 1), 2),
        "server_cpu_ms_per_broadcast": round((cpu_after - cpu_before) * 1e3 / max(len(sent), 1), 2),
        "client_cpu_ms_per_broadcast": round(
            (client_cpu_after - client_cpu_before) * 1e3 / max(len(sent), 1), 2
        ),
        "update_phase_s": round(update_phase_s, 2),
        # During the update phase: CPU of every other process (other work disturbs the numbers),
        # interrupt handling (loopback TCP is mostly softirq) and steal (the hypervisor's neighbours)
        "other_cpu_cores": round(
            (
                (machine_after[0] - machine_before[0])
                - (cpu_after - cpu_before)
                - (client_cpu_after - client_cpu_before)
                - (own_after - own_before)
            )
            / update_phase_s,
            2,
        ),
        "softirq_cores": round((machine_after[1] - machine_before[1]) / update_phase_s, 2),
        "steal_cores": round((machine_after[2] - machine_before[2]) / update_phase_s, 2),
        "keepalive_ping_may_overlap": first_connection_age + update_phase_s > PING_INTERVAL_SECONDS,
        "subscriber_processes": args.processes,
        "updates_not_reaching_everyone": incomplete,
        "timed_out": any(d["timed_out"] for d in done),
        "check": {
            "subscribers": check.subscribers,
            "complete": check.complete,
            "missing": check.missing,
            "out_of_order": check.out_of_order,
            "conflated": check.conflated,
            "extra_snapshots": check.snapshots,
            "other_messages": check.other,
            "closed": dict(check.closed),
            "passed": check.passed and connected == args.subscribers and statuses[200] == len(sent),
        },
        "ok_to_last_ms": [ms(x) for x in to_last],
        "send_to_ok_ms": [ms(x) for x in to_ok],
    }
    if profile is not None:
        result["profile"] = {k: [[f, round(v, 4)] for f, v in rows] for k, rows in profile.items()}
    return result


# Report.


def print_table(results: Sequence[dict[str, Any]]) -> None:
    header = (
        f"{'variant':<20} {'subs':>5} {'frame B':>7} {'200→last p50':>12} {'p99':>8} {'200→median p50':>14}"
        f" {'p99':>8} {'send→200 p50':>12} {'KiB/conn':>8} {'srv CPU ms/bc':>13} {'cli CPU ms/bc':>13}"
        f" {'bc mean ms':>10}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        bc = r["server_broadcast_mean_ms"]
        print(
            f"{r['variant']:<20} {r['connected']:>5} {r['frame_bytes']:>7} {r['p50_ok_to_last_ms']:>12.1f}"
            f" {r['p99_ok_to_last_ms']:>8.1f} {r['p50_ok_to_median_ms']:>14.1f} {r['p99_ok_to_median_ms']:>8.1f}"
            f" {r['p50_send_to_ok_ms']:>12.1f} {r['kib_per_connection']:>8.1f}"
            f" {r['server_cpu_ms_per_broadcast']:>13.1f} {r['client_cpu_ms_per_broadcast']:>13.1f}"
            f" {'n/a' if bc is None else f'{bc:.1f}':>10}"
        )
    for r in results:
        c = r["check"]
        print(
            f"{r['variant']}: {'OK' if c['passed'] else 'FAILED'}: {c['complete']}/{r['subscribers']} subscribers"
            f" got every seq; missing {c['missing']}, out of order {c['out_of_order']}, conflated to a"
            f" snapshot {c['conflated']}, other messages {c['other_messages']}, closed {c['closed'] or 0};"
            f" statuses {r['statuses']}"
        )
        print(
            f"{r['variant']}:   during the updates: other processes {r['other_cpu_cores']} cores, interrupts"
            f" {r['softirq_cores']}, steal {r['steal_cores']}; {r['update_phase_s']} s"
        )
        if r["keepalive_ping_may_overlap"]:
            print(f"{r['variant']}:   note: the update phase may overlap uvicorn's 20 s keepalive pings")
        for title in ("self", "inclusive"):
            rows = r.get("profile", {}).get(title, [])
            if rows:
                print(f"{r['variant']}: server profile, {title} share of samples:")
                for frame, share in rows:
                    print(f"    {share:6.1%}  {frame}")


# Command line.


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add("--subscribers", type=int, default=1000, help="WebSocket subscribers (1000)")
    add("--updates", type=int, default=50, help="score updates, each one broadcast (50)")
    add("--interval", type=float, default=0.1, help="seconds between updates (0.1)")
    add("--processes", type=int, default=2, help="subscriber processes sharing the connections (2)")
    add("--batch", type=int, default=100, help="connections opened at once per process (100)")
    add("--idle", type=float, default=2.0, help="seconds idle before reading memory (2)")
    add("--deadline", type=float, default=60.0, help="seconds a variant may take once its server is up (60)")
    add(
        "--variants",
        default="serve",
        help=f"comma-separated, each {'|'.join(IMPLEMENTATIONS)} with an optional :none (no compression"
        " offered); each gets a fresh server (serve)",
    )
    add("--json", type=Path, help="also write the results to this file")
    add("--profile", type=Path, help="folder for a py-spy profile of the update phase (distorts timings)")
    add("--keep", action="store_true", help="keep the temporary data folder (databases, server logs)")
    args = parser.parse_args(argv)
    if args.subscribers < 1 or args.updates < 1 or args.processes < 1 or args.batch < 1:
        parser.error("--subscribers, --updates, --processes and --batch must be positive")
    try:
        args.variants = [Variant.parse(v.strip()) for v in args.variants.split(",") if v.strip()]
    except ValueError as error:
        parser.error(f"unknown variant {error}; use {', '.join(IMPLEMENTATIONS)} with an optional :none")
    return args


def run(args: argparse.Namespace, folder: Path) -> int:
    limit = raise_fd_limit(args.subscribers + 1024)
    if limit < args.subscribers + 64:
        raise BenchError(f"the open-files limit is {limit}: too low for {args.subscribers} connections")
    print(
        f"{args.subscribers} subscribers in {args.processes} process(es), {args.updates} updates"
        f" {args.interval * 1e3:.0f} ms apart; {os.cpu_count()} CPUs; clock {time.get_clock_info('perf_counter').implementation}"
    )
    results, skipped = [], []
    for i, variant in enumerate(args.variants):
        if variant.implementation == "wsproto" and importlib.util.find_spec("wsproto") is None:
            print(f"[{variant.label}] skipped: wsproto is not importable (pip install wsproto)")
            skipped.append(variant.label)
            continue
        results.append(run_variant(args, variant, folder / f"{i}-{variant.label.replace(':', '-')}"))
    print()
    print_table(results)
    if args.json:
        document = {
            "benchmark": "fanout",
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": " ".join(sys.argv),
            "environment": environment(("uvicorn", "websockets", "wsproto", "uvloop", "starlette")),
            "settings": {
                "subscribers": args.subscribers,
                "updates": args.updates,
                "interval_s": args.interval,
                "processes": args.processes,
                "batch": args.batch,
                "idle_s": args.idle,
            },
            "skipped": skipped,
            "results": results,
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n")
        print(f"results written to {args.json}")
    return 0 if all(r["check"]["passed"] for r in results) else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="scoreboard-fanout-"))
    try:
        return run(args, folder)
    except BenchError as error:
        print(f"fanout: {error}", file=sys.stderr)
        return 2
    finally:
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
