"""Three real instances on PostgreSQL + Redis (+ RabbitMQ) behind a real NGINX, and the clients that
drive them over TLS: players sending score updates, watchers recording every board they are sent."""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import ssl
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.backends import AMQP_URL, REDIS_URL, require
from tests.e2e.nginx import Nginx
from tests.e2e.server import Server, Servers
from tests.isolation import delete_exchanges, delete_redis_prefix, unique
from tests.postgres_support import private_database

PASSWORD = "correct horse battery staple"
SUBSCRIBE: dict[str, Any] = {"type": "subscribe", "channel": "scoreboard_updates"}
# Every client is 127.0.0.1, so the shipped per-address shields would stop the test's own load.
TEST_RATES = {"scoreboard_auth": "1000r/s", "scoreboard_updates": "100000r/s"}
STORE_TOP = """SELECT user_id::text, score FROM user_score WHERE score > 0
ORDER BY score DESC, score_reached_at ASC, user_id ASC LIMIT 10"""


@dataclass
class Cluster:
    instances: list[Server]
    nginx: Nginx
    database: str

    def tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.nginx.tls.ca))

    def http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.nginx.https_url, verify=self.tls(), timeout=15.0)

    async def store_top(self) -> list[tuple[str, int]]:
        conn = await asyncpg.connect(self.database)
        try:
            return [(row["user_id"], row["score"]) for row in await conn.fetch(STORE_TOP)]
        finally:
            await conn.close()


@asynccontextmanager
async def shared_backends(tag: str = "test") -> AsyncIterator[dict[str, str | None]]:
    """The settings of instances that share a private PostgreSQL database, Redis key prefix and
    signing secret (the open action policy); the keys are removed afterwards, the database dropped."""
    require("redis")
    prefix = unique(tag)
    try:
        async with private_database() as database:
            yield {
                "SCOREBOARD_DATABASE_URL": database,
                "SCOREBOARD_REDIS_URL": REDIS_URL,
                "SCOREBOARD_REDIS_PREFIX": prefix,
                "SCOREBOARD_JWT_SECRET": secrets.token_urlsafe(48),
                "SCOREBOARD_ACTION_POLICY": "open",
            }
    finally:
        await delete_redis_prefix(prefix)


@asynccontextmanager
async def cluster(
    servers: Servers, root: Path, broker: str = "redis", roles: Sequence[str] = ("all", "all", "all")
) -> AsyncIterator[Cluster]:
    """Instances with the given roles sharing a private database and key prefix, NGINX in front of
    every instance that serves the API or the fan-out."""
    if broker == "rabbitmq":
        require("rabbitmq")
    async with shared_backends() as shared:
        prefix, database = str(shared["SCOREBOARD_REDIS_PREFIX"]), str(shared["SCOREBOARD_DATABASE_URL"])
        env = {
            **shared,
            "SCOREBOARD_BROKER_URL": AMQP_URL if broker == "rabbitmq" else None,
            "SCOREBOARD_TRUSTED_PROXIES": "127.0.0.1",
        }
        instances = [
            servers.start(f"{role}{n}", env=env, args=("--role", role)) for n, role in enumerate(roles, 1)
        ]
        api = [s.port for s, role in zip(instances, roles, strict=True) if role in ("all", "api")]
        realtime = [s.port for s, role in zip(instances, roles, strict=True) if role in ("all", "realtime")]
        nginx = Nginx(root / "nginx", api, realtime, TEST_RATES).start()
        try:
            yield Cluster(instances, nginx, database)
        finally:
            nginx.stop()
            for server in instances:
                server.stop()
            if broker == "rabbitmq":
                await delete_exchanges(f"{prefix}scoreboard.board", f"{prefix}scoreboard.events")


@dataclass
class Player:
    user_id: str
    headers: dict[str, str]
    acknowledged: int = 0  # actions answered 200, or 409 on a retry (applied by an earlier try)


async def join(http: httpx.AsyncClient) -> Player:
    username = f"cl_{uuid.uuid4().hex[:12]}"
    registered = await http.post("/api/auth/register", json={"username": username, "password": PASSWORD})
    assert registered.status_code == 201, registered.text
    login = await http.post("/api/auth/login", json={"username": username, "password": PASSWORD})
    assert login.status_code == 200, login.text
    return Player(registered.json()["user_id"], {"Authorization": f"Bearer {login.json()['access_token']}"})


async def complete_action(http: httpx.AsyncClient, player: Player, retry_seconds: float = 20.0) -> list[int]:
    """One new action, retried with the same action_id until it is known to count (200, or 409 after
    a failed try: an earlier attempt was applied); the statuses seen, in order."""
    body = {"user_id": player.user_id, "action_id": str(uuid.uuid4())}
    statuses: list[int] = []
    deadline = asyncio.get_running_loop().time() + retry_seconds
    while True:
        try:
            response = await http.post("/api/score/update", json=body, headers=player.headers)
            statuses.append(response.status_code)
        except httpx.TransportError:
            statuses.append(0)
        if statuses[-1] == 200 or (statuses[-1] == 409 and len(statuses) > 1):
            player.acknowledged += 1
            return statuses
        assert statuses[-1] in {0, 502, 503, 504}, f"unexpected answer {statuses}"
        assert asyncio.get_running_loop().time() < deadline, f"no answer within {retry_seconds}s: {statuses}"
        await asyncio.sleep(0.05)


@dataclass
class Watcher:
    """One `wss://` subscriber through NGINX; reconnects with `since` when its connection drops."""

    url: str
    tls: ssl.SSLContext
    boards: list[tuple[str, int, int, str]] = field(default_factory=list)  # (type, epoch, seq, top)
    reconnects: int = 0

    @property
    def last(self) -> tuple[int, int] | None:
        return (self.boards[-1][1], self.boards[-1][2]) if self.boards else None

    async def run(self, subscribed: asyncio.Event) -> None:
        while True:
            try:
                async with connect(self.url, ssl=self.tls, open_timeout=10) as ws:
                    since = self.last
                    message = (
                        dict(SUBSCRIBE, since={"epoch": since[0], "seq": since[1]}) if since else SUBSCRIBE
                    )
                    await ws.send(json.dumps(message))
                    async for raw in ws:
                        board = json.loads(raw)
                        self.boards.append(
                            (board["type"], board["epoch"], board["seq"], json.dumps(board["top"]))
                        )
                        subscribed.set()
            except (ConnectionClosed, OSError, TimeoutError):
                self.reconnects += 1
                await asyncio.sleep(0.1 + 0.2 * secrets.randbelow(10) / 10)

    def updates_are_gapless(self) -> bool:
        """After its first snapshot: one epoch, every seq exactly one more than the one before."""
        seqs = [(epoch, seq) for _, epoch, seq, _ in self.boards]
        return all(
            (epoch, seq) == (prev[0], prev[1] + 1) for prev, (epoch, seq) in itertools.pairwise(seqs)
        ) and all(kind == "update" for kind, *_ in self.boards[1:])


@asynccontextmanager
async def watching(cluster: Cluster, count: int) -> AsyncIterator[list[Watcher]]:
    tls = cluster.tls()
    watchers = [Watcher(cluster.nginx.wss_url, tls) for _ in range(count)]
    ready = [asyncio.Event() for _ in watchers]
    tasks = [asyncio.create_task(w.run(event)) for w, event in zip(watchers, ready, strict=True)]
    try:
        await asyncio.wait_for(asyncio.gather(*(event.wait() for event in ready)), 30)
        yield watchers
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def caught_up(watchers: list[Watcher], epoch: int, seq: int, timeout: float = 30.0) -> None:
    async def reach(watcher: Watcher) -> None:
        while watcher.last is None or watcher.last < (epoch, seq):
            await asyncio.sleep(0.05)

    await asyncio.wait_for(asyncio.gather(*(reach(w) for w in watchers)), timeout)


async def ws_connections(server: Server) -> float:
    async with httpx.AsyncClient(timeout=5) as http:
        text = (await http.get(f"{server.base_url}/metrics")).text
    for line in text.splitlines():
        if line.startswith('scoreboard_realtime_connections{transport="ws"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0
