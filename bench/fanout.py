"""Fan-out benchmark: one score update's 200 → the last of N WebSocket subscribers receiving it.

1. Starts the server on a free 127.0.0.1 port, embedded (a fresh SQLite file in a temporary folder,
   in-memory cache and broker), rate limits off, the open action policy (no tickets needed).
   Each --variants item is its own fresh server: `serve` is `scoreboard serve` itself (uvicorn's
   default WebSocket implementation, websockets-sansio); `websockets`, `websockets-sansio` and
   `wsproto` run `python -m uvicorn scoreboard.app:create_app --factory --ws NAME` with the same
   settings as `scoreboard serve`. A `:none` suffix (e.g. `serve:none`) makes the clients offer no
   permessage-deflate; by default they offer it, as browsers and the `websockets` client do.
   With --store postgres, each variant runs --instances servers (e.g. 1,2: one run of each) sharing
   a fresh private PostgreSQL database, Redis key prefix (leaderboard, Pub/Sub broker) and JWT
   secret, or RabbitMQ exchanges under that prefix with --broker amqp://...; all removed afterwards.
2. Registers 10 accounts and gives each a point, so the top 10 is full and every later update changes
   it (a score in the top 10 rises) and is broadcast. The frame is about 1 KB (the size is reported).
3. Reads the servers' VmRSS, then opens --subscribers WebSocket connections (the `websockets` asyncio
   client) from --processes separate subscriber processes, in batches, subscriber i on instance
   i mod --instances, each subscribing and waiting for its snapshot; after --idle seconds reads
   VmRSS again: (after - before) / subscribers = memory per idle connection, per instance.
4. Sends --updates score updates, one every --interval seconds, each waiting for its 200, over one
   keep-alive HTTP connection to the first instance (--update-to first) or one to each instance, in
   turn (--update-to alternate). Every subscriber's receive loop records when each seq arrived
   (time.perf_counter_ns, CLOCK_MONOTONIC on Linux, so comparable across the processes). Per update:
   200 → last subscriber (also split into the subscribers of the instance that took the update and
   those of the others), 200 → median subscriber, request sent → 200. Each server's utime + stime
   (/proc/PID/stat) over the update phase / updates = its CPU per broadcast (HTTP update included).
5. Checks every subscriber got every seq in order and that all saw the same sequence; gaps, repeats
   and seqs out of order are counted and fail the run. Conflation (a snapshot in place of missed
   updates, allowed under overload) is reported.

Exit status: 0 when all is well, 1 when a subscriber missed updates or could not connect, 2 when the
benchmark could not run.

    .venv/bin/python bench/fanout.py [--subscribers 1000] [--updates 50] [--variants serve] [--json FILE]
    .venv/bin/python bench/fanout.py --store postgres --instances 1,2 --update-to alternate \
        [--postgres URL] [--redis URL] [--broker amqp://guest:guest@127.0.0.1:5672/]

docs/benchmarks.md explains the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import re
import signal
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fanout_report import Run, print_table, summarize
from fanout_servers import HOST, Profiler, Server, machine_cpu, raise_fd_limit, shared_backends
from fanout_subscribers import Subscribers, event_loop_factory, now_ns

# The HTTP helpers and the record of where a result was measured are shared with the update benchmark.
from score_updates import BenchError, encode_request, environment, in_scratch_folder

PASSWORD = "bench-password-0123"
BOARD_SIZE = 10
# With 10 players of this display-name length the update frame is about 1 KB, the size the project
# brief's comparison points were measured with.
DISPLAY_NAME = "Player {:02d}"
PING_INTERVAL_SECONDS = 20.0  # uvicorn's default keepalive ping: the update phase should end before it
IMPLEMENTATIONS = ("serve", "websockets-sansio", "websockets", "wsproto")
BROADCAST_METRICS = (
    "scoreboard_broadcast_duration_seconds_sum",
    "scoreboard_broadcast_duration_seconds_count",
)
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)


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
    instance: int  # the index of the server that took it


async def drive_updates(
    ports: Sequence[int], accounts: Sequence[Account], count: int, interval: float
) -> list[Sent]:
    """`count` updates, one every `interval` seconds (or right after the previous 200 if later),
    update i to ports[i mod len(ports)], each over its own keep-alive connection."""
    requests = [
        encode_request("POST", "/api/score/update", update_body(a), a.token)
        for a in (accounts[i % len(accounts)] for i in range(count))
    ]
    results = []
    async with contextlib.AsyncExitStack() as stack:
        connections = []
        for port in ports:
            connections.append(await Http.open(port))
            stack.push_async_callback(connections[-1].close)
        start = time.perf_counter()
        for i, raw in enumerate(requests):
            delay = start + i * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            target = i % len(connections)
            sent = now_ns()
            status, _ = await asyncio.wait_for(connections[target].send(raw), 30)
            results.append(Sent(sent, now_ns(), status, target))
    return results


# What runs: the server implementation and what the clients offer.


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


# One run: a variant on fresh servers, the connections, the updates.


def run_variant(args: argparse.Namespace, variant: Variant, instances: int, folder: Path) -> dict[str, Any]:
    label = (
        variant.label if args.store == "sqlite" else f"{variant.label} x{instances} {backends_label(args)}"
    )
    with contextlib.ExitStack() as stack:  # unwinds in reverse: servers stopped, then backends removed
        runner = stack.enter_context(asyncio.Runner(loop_factory=event_loop_factory()))
        shared = None
        if args.store == "postgres":
            shared = stack.enter_context(shared_backends(args.postgres, args.redis, args.broker))
        servers = []
        for i in range(instances):  # one after another: the first migrates the shared database
            server = Server(folder / f"instance-{i}", variant.implementation, shared)
            servers.append(stack.enter_context(server))
            print(f"[{label}] server {i} pid {server.pid} on {HOST}:{server.port}: {variant.describe()}")
        run = Run(label, instances)
        deadline = time.monotonic() + args.deadline
        measure(args, runner, servers, variant, run, deadline)
    return summarize(args, variant.describe(), run)


def measure(
    args: argparse.Namespace,
    runner: asyncio.Runner,
    servers: Sequence[Server],
    variant: Variant,
    run: Run,
    deadline: float,
) -> None:
    accounts = runner.run(create_accounts(servers[0].port, BOARD_SIZE))
    time.sleep(0.5)
    rss_before = [s.rss_kib() for s in servers]
    connecting = time.monotonic()
    urls = [f"ws://{HOST}:{s.port}/ws" for s in servers]
    subscribers = Subscribers(urls, args.subscribers, args.processes, args.batch, variant.compression)
    profiler = None
    try:
        wait_subscribed(run, subscribers, deadline)
        time.sleep(args.idle)
        rss_idle = [s.rss_kib() for s in servers]
        if args.profile:
            args.profile.mkdir(parents=True, exist_ok=True)
            name = run.label.replace(" ", "-").replace(":", "-")
            profiler = Profiler(servers[0].pid, args.profile / f"fanout-{name}.txt")
        ports = [s.port for s in (servers if args.update_to == "alternate" else servers[:1])]
        update_phase(args, runner, run, servers, subscribers, ports, accounts, deadline)
        run.ping_may_overlap = time.monotonic() - connecting > PING_INTERVAL_SECONDS
        subscribers.send_all(("report",))
        run.done = subscribers.receive_all("done", time.monotonic() + 30)
        run.rss_kib = [(b, i, s.rss_kib()) for b, i, s in zip(rss_before, rss_idle, servers, strict=True)]
        run.profile = profiler.stop() if profiler else None
        profiler = None
    finally:
        if profiler is not None:
            profiler.stop()
        subscribers.stop()


def wait_subscribed(run: Run, subscribers: Subscribers, deadline: float) -> None:
    ready = subscribers.receive_all("ready", deadline)
    run.connected = sum(r["connected"] for r in ready)
    run.per_instance = [sum(column) for column in zip(*(r["per_instance"] for r in ready), strict=True)]
    for r in ready:
        run.failures.update(r["failures"])
    seqs = sorted({s for r in ready for s in r["snapshot_seqs"]})
    run.connect_s = max(r["connect_s"] for r in ready)
    print(f"[{run.label}] {run.per_instance} subscribed in {run.connect_s:.1f} s; snapshot seqs {seqs}")
    for failure, n in run.failures.most_common(5):
        print(f"[{run.label}]   {n} failed: {failure}")
    if not run.connected:
        raise BenchError("no subscriber could connect")
    run.base = seqs[-1]


def update_phase(
    args: argparse.Namespace,
    runner: asyncio.Runner,
    run: Run,
    servers: Sequence[Server],
    subscribers: Subscribers,
    ports: Sequence[int],
    accounts: Sequence[Account],
    deadline: float,
) -> None:
    """The timed updates, with every server's CPU time and broadcast metrics around them."""
    metrics_before = [s.metrics(*BROADCAST_METRICS) for s in servers]
    cpu_before, client_cpu_before = [s.cpu_seconds() for s in servers], subscribers.cpu_seconds()
    machine_before, own_before = machine_cpu(), time.process_time()
    started = time.monotonic()
    if started + args.updates * args.interval + 5 > deadline:
        raise BenchError(f"no time left for the updates before the --deadline of {args.deadline} s")
    run.sent = runner.run(drive_updates(ports, accounts, args.updates, args.interval))
    subscribers.send_all(("expect", run.base + args.updates, max(1.0, deadline - time.monotonic())))
    subscribers.receive_all("reached", deadline + 10)
    run.server_cpu_s = [s.cpu_seconds() - before for s, before in zip(servers, cpu_before, strict=True)]
    run.client_cpu_s = subscribers.cpu_seconds() - client_cpu_before
    machine_after, own = machine_cpu(), time.process_time() - own_before
    run.update_phase_s = time.monotonic() - started
    busy = machine_after[0] - machine_before[0]
    # CPU of every other process (other work disturbs the numbers; the shared PostgreSQL, Redis and
    # RabbitMQ servers count here too), interrupt handling (loopback TCP is mostly softirq) and steal
    # (the hypervisor's neighbours), in cores
    run.machine = {
        "other": (busy - sum(run.server_cpu_s) - run.client_cpu_s - own) / run.update_phase_s,
        "softirq": (machine_after[1] - machine_before[1]) / run.update_phase_s,
        "steal": (machine_after[2] - machine_before[2]) / run.update_phase_s,
    }
    for server, before in zip(servers, metrics_before, strict=True):
        after = server.metrics(*BROADCAST_METRICS)
        count, total = (after.get(n, 0) - before.get(n, 0) for n in reversed(BROADCAST_METRICS))
        run.broadcasts.append((count, total))


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
    add("--deadline", type=float, default=60.0, help="seconds a run may take once its servers are up (60)")
    add(
        "--variants",
        default="serve",
        help=f"comma-separated, each {'|'.join(IMPLEMENTATIONS)} with an optional :none (no compression"
        " offered); each gets a fresh server (serve)",
    )
    add("--store", choices=("sqlite", "postgres"), default="sqlite", help="embedded, or PostgreSQL + Redis")
    add(
        "--instances",
        default="1",
        help="with --store postgres: comma-separated server counts, a run each (1)",
    )
    add("--update-to", choices=("first", "alternate"), default="first", help="instance(s) taking updates")
    add("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres", help="maintenance database")
    add("--redis", default="redis://127.0.0.1:6379/0", help="Redis URL (keys under a private prefix)")
    add("--broker", help="broker URL, e.g. amqp://guest:guest@127.0.0.1:5672/ (default: Redis Pub/Sub)")
    add("--json", type=Path, help="also write the results to this file")
    add("--profile", type=Path, help="folder for a py-spy profile of the update phase (distorts timings)")
    add("--keep", action="store_true", help="keep the temporary data folder (databases, server logs)")
    args = parser.parse_args(argv)
    if args.subscribers < 1 or args.updates < 1 or args.processes < 1 or args.batch < 1:
        parser.error("--subscribers, --updates, --processes and --batch must be positive")
    try:
        args.variants = [Variant.parse(v.strip()) for v in args.variants.split(",") if v.strip()]
        args.instances = [int(n) for n in args.instances.split(",") if n.strip()]
    except ValueError as error:
        parser.error(
            f"{error}: --variants takes {', '.join(IMPLEMENTATIONS)} with an optional :none,"
            " --instances whole numbers"
        )
    if not args.instances or min(args.instances) < 1:
        parser.error("--instances must be positive")
    if args.store == "sqlite" and (max(args.instances) > 1 or args.broker):
        parser.error(
            "--instances above 1 and --broker need --store postgres (instances share PostgreSQL + Redis)"
        )
    return args


def backends_label(args: argparse.Namespace) -> str:
    return "pg+redis" + ("+rabbitmq" if args.broker and args.broker.startswith("amqp") else "")


def run(args: argparse.Namespace, folder: Path) -> int:
    # per connection: a socket in a subscriber process and one in a server; plus the servers' own files
    limit = raise_fd_limit(args.subscribers + 1024)
    if limit < args.subscribers + 64:
        raise BenchError(f"the open-files limit is {limit}: too low for {args.subscribers} connections")
    print(
        f"{args.subscribers} subscribers in {args.processes} process(es), {args.updates} updates"
        f" {args.interval * 1e3:.0f} ms apart to the {args.update_to} instance(s); {os.cpu_count()} CPUs;"
        f" open-files limit {limit}; clock {time.get_clock_info('perf_counter').implementation}"
    )
    results, skipped = [], []
    for i, variant in enumerate(args.variants):
        if variant.implementation == "wsproto" and importlib.util.find_spec("wsproto") is None:
            print(f"[{variant.label}] skipped: wsproto is not importable (pip install wsproto)")
            skipped.append(variant.label)
            continue
        for instances in args.instances:
            name = f"{i}-{variant.label.replace(':', '-')}-x{instances}"
            results.append(run_variant(args, variant, instances, folder / name))
    print()
    print_table(results)
    if args.json:
        write_json(args, results, skipped)
    return 0 if all(r["check"]["passed"] for r in results) else 1


def write_json(args: argparse.Namespace, results: Sequence[dict[str, Any]], skipped: Sequence[str]) -> None:
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
            "store": args.store,
            "update_to": args.update_to,
        },
        "skipped": list(skipped),
        "results": list(results),
    }
    args.json.write_text(json.dumps(document, indent=2) + "\n")
    print(f"results written to {args.json}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # a plain `kill` must still stop the servers and remove the database and keys (finally blocks)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    return in_scratch_folder("fanout", args, run)


if __name__ == "__main__":
    raise SystemExit(main())
