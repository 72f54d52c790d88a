"""Many instances behind NGINX against one instance: score updates per second on PostgreSQL + Redis.

For each topology (`--topologies`, default `1,nginx:1,nginx:3`: one instance reached directly, one
behind NGINX, three behind NGINX) the script:

1. creates a private PostgreSQL database and Redis key prefix, starts the instances (`scoreboard
   serve`, open action policy, rate limits off, `SCOREBOARD_TRUSTED_PROXIES=127.0.0.1`) and, for
   `nginx:N`, NGINX running the shipped `deploy/nginx/scoreboard.conf` — rendered exactly as the
   cluster tests render it (`tests/e2e/nginx.py`: the test's ports and certificate, `limit_req` rates
   raised because every client is 127.0.0.1) — over TLS;
2. registers --users accounts and sends --requests score updates (each a new action id) with wrk and
   bench/score_updates.lua over --clients keep-alive connections (HTTPS through NGINX);
3. reports updates/s, p50/p99 latency and the CPU of the instances (and of NGINX) per update, and
   checks that the Store's scores add up to the 200s;
4. then opens --subscribers WebSocket connections (`wss://` through NGINX, spread over the
   instances by it) from two subscriber processes, sends --broadcasts score updates one after the
   other (each changes the top 10), and reports the time from each update's 200 to the last
   subscriber receiving it (p50/p99 over the broadcasts), checking that every connection got every seq.

    .venv/bin/python bench/cluster.py [--topologies 1,nginx:1,nginx:3] [--clients 64] [--requests 6000]
        [--subscribers 3000] [--broadcasts 30]

Needs wrk (Debian: wrk), nginx (Debian: nginx-light) and the PostgreSQL and Redis servers.
docs/benchmarks.md has the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import resource
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the test tier's process helpers

from cluster_fanout import Subscribers
from score_updates import Account, Drive, drive_wrk
from tests.e2e.cluster import TEST_RATES, shared_backends
from tests.e2e.nginx import Nginx
from tests.e2e.server import Server, Servers

PASSWORD = "bench-password-0123"


@dataclass
class Fanout:
    subscribers: int
    p50_ms: float
    p99_ms: float
    complete: bool  # every connection received every broadcast seq

    def line(self) -> str:
        return f"{self.subscribers:>11} {self.p50_ms:>14.1f} {self.p99_ms:>14.1f}  {self.complete}"


@dataclass
class Result:
    topology: str
    drive: Drive
    instances_cpu_s: float
    nginx_cpu_s: float
    stored: int
    fanout: Fanout | None = None

    def line(self) -> str:
        d = self.drive
        per = 1e6 / max(d.ok, 1)
        return (
            f"{self.topology.lstrip(':'):>9} {d.ok:>7} {d.ok / d.elapsed_s:>10.1f} {d.p50_ms:>8.2f} {d.p99_ms:>8.2f}"
            f" {self.instances_cpu_s * per:>13.0f} {self.nginx_cpu_s * per:>10.0f}  {self.stored == d.ok}"
        )


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process and its waited-for children would miss live workers: sum the
    process and every live descendant (NGINX's workers)."""
    total = 0.0
    pids = [pid]
    while pids:
        current = pids.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rpartition(")")[2].split()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / 100  # clock ticks, USER_HZ = 100 on Linux
        pids += [int(child) for child in children]
    return total


async def accounts(base_url: str, count: int, verify: object) -> list[Account]:
    async with httpx.AsyncClient(base_url=base_url, verify=verify, timeout=30) as http:  # type: ignore[arg-type]
        made = []
        for _ in range(count):
            name = f"c{uuid.uuid4().hex[:12]}"
            body = {"username": name, "password": PASSWORD}
            registered = (await http.post("/api/auth/register", json=body)).json()
            token = (await http.post("/api/auth/login", json=body)).json()["access_token"]
            made.append(Account(registered["user_id"], token))
        return made


async def stored_total(database: str) -> int:
    conn = await asyncpg.connect(database)
    try:
        return int(await conn.fetchval("SELECT coalesce(sum(score), 0) FROM user_score"))
    finally:
        await conn.close()


async def measure(topology: str, args: argparse.Namespace, root: Path) -> Result:
    behind_nginx, _, count = topology.rpartition(":")
    instances = int(count)
    servers = Servers(root / topology.replace(":", "-"))
    async with shared_backends("bench") as shared:
        database = str(shared["SCOREBOARD_DATABASE_URL"])
        env = {
            **shared,
            "SCOREBOARD_TRUSTED_PROXIES": "127.0.0.1",
            "SCOREBOARD_LOG_LEVEL": "warning",
            # Every subscriber is 127.0.0.1 here: lift the per-address cap on WebSocket connections.
            "SCOREBOARD_WS_MAX_CONNECTIONS_PER_ADDRESS": "100000",
            "SCOREBOARD_WS_MAX_CONNECTIONS": "100000",
        }
        nginx: Nginx | None = None
        try:
            started: list[Server] = [servers.start(f"i{n}", env=env) for n in range(instances)]
            ports = [server.port for server in started]
            if behind_nginx:
                nginx = Nginx(servers.root / "nginx", ports, ports, TEST_RATES).start()
            base_url = nginx.https_url if nginx else started[0].base_url
            verify: object = str(nginx.tls.ca) if nginx else True
            users = await accounts(base_url, args.users, verify)
            tickets = [(users[i % len(users)], str(uuid.uuid4())) for i in range(args.requests)]
            nginx_pid = nginx._process.pid if nginx and nginx._process else None
            before = sum(cpu_seconds(s.pid) for s in started), cpu_seconds(nginx_pid) if nginx_pid else 0.0
            drive = await asyncio.to_thread(
                drive_wrk, base_url, tickets, args.clients, args.max_seconds, servers.root
            )
            after = sum(cpu_seconds(s.pid) for s in started), cpu_seconds(nginx_pid) if nginx_pid else 0.0
            stored = await stored_total(database)
            fanout = None
            if args.subscribers:
                ws_url = nginx.wss_url if nginx else f"ws://127.0.0.1:{started[0].port}/ws"
                cafile = str(nginx.tls.ca) if nginx else None
                fanout = await broadcast(base_url, verify, ws_url, cafile, users[0], args)
            return Result(topology, drive, after[0] - before[0], after[1] - before[1], stored, fanout)
        finally:
            if nginx is not None:
                nginx.stop()
            servers.stop_all()


async def broadcast(
    base_url: str, verify: object, ws_url: str, cafile: str | None, leader: Account, args: argparse.Namespace
) -> Fanout:
    """--broadcasts updates by the board's leader (each changes the top 10), one at a time."""
    subscribers = Subscribers(ws_url, cafile, args.subscribers)
    connected = await asyncio.to_thread(subscribers.wait_ready)
    async with httpx.AsyncClient(base_url=base_url, verify=verify, timeout=30) as http:  # type: ignore[arg-type]
        headers = {"Authorization": f"Bearer {leader.token}"}
        for _ in range(2):  # now surely first: each later point changes the top 10, so is broadcast
            body = {"user_id": leader.user_id, "action_id": str(uuid.uuid4())}
            assert (await http.post("/api/score/update", json=body, headers=headers)).status_code == 200
        await asyncio.sleep(0.5)
        first = (await http.get("/api/leaderboard")).json()["seq"]
        answered: dict[int, int] = {}
        for n in range(1, args.broadcasts + 1):
            body = {"user_id": leader.user_id, "action_id": str(uuid.uuid4())}
            response = await http.post("/api/score/update", json=body, headers=headers)
            answered[first + n] = time.perf_counter_ns()
            assert response.status_code == 200, response.text
            await asyncio.sleep(args.interval)
    arrivals = await asyncio.to_thread(subscribers.finish)
    lags = sorted((max(arrivals.get(seq, [at])) - at) / 1e6 for seq, at in answered.items())
    complete = connected == args.subscribers and all(
        len(arrivals.get(seq, [])) == args.subscribers for seq in answered
    )
    return Fanout(connected, percentile(lags, 50), percentile(lags, 99), complete)


def percentile(ordered: list[float], p: float) -> float:
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] if ordered else 0.0


async def main(args: argparse.Namespace) -> int:
    results = []
    with tempfile.TemporaryDirectory(prefix="scoreboard-cluster-") as folder:
        for topology in args.topologies:
            print(f"[{topology}] running…", flush=True)
            results.append(await measure(topology, args, Path(folder)))
    print(
        f"\n{args.clients} clients, {args.requests} updates each, PostgreSQL + Redis, wrk + score_updates.lua"
    )
    print(
        f"{'topology':>9} {'200s':>7} {'updates/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'inst CPU µs/u':>13} {'nginx µs/u':>10}  sums ok"
    )
    for result in results:
        print(result.line())
    if args.subscribers:
        print(
            f"\nfan-out: {args.broadcasts} broadcasts {args.interval}s apart, 200 of the update -> last subscriber"
        )
        print(
            f"{'topology':>9} {'subscribers':>11} {'200→last p50 ms':>14} {'200→last p99 ms':>14}  all got all"
        )
        for result in results:
            assert result.fanout is not None
            print(f"{result.topology.lstrip(':'):>9} " + result.fanout.line())
    complete = all(r.fanout is None or r.fanout.complete for r in results)
    return (
        0 if complete and all(r.stored == r.drive.ok and r.drive.ok == args.requests for r in results) else 1
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--topologies", default="1,nginx:1,nginx:3", help="comma-separated N or nginx:N")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--requests", type=int, default=6000)
    parser.add_argument("--users", type=int, default=64)
    parser.add_argument("--max-seconds", type=float, default=20.0)
    parser.add_argument("--subscribers", type=int, default=3000, help="WebSocket subscribers (0: no fan-out)")
    parser.add_argument("--broadcasts", type=int, default=30)
    parser.add_argument("--interval", type=float, default=0.3, help="seconds between broadcasts")
    args = parser.parse_args(argv)
    args.topologies = [t if ":" in t else f":{t}" for t in args.topologies.split(",") if t.strip()]
    return args


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)
    raise SystemExit(asyncio.run(main(parse_args())))
