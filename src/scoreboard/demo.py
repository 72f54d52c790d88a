"""`scoreboard demo`: serve, and drive simulated players through the real HTTP API so the board moves."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import secrets
import tempfile
import time
from dataclasses import dataclass, replace

import httpx
import uvicorn

from scoreboard.app import create_app
from scoreboard.client import ScoreboardClient, ScoreboardError
from scoreboard.config import Settings
from scoreboard.server_options import uvicorn_options

NAMES = (
    "ada",
    "grace",
    "alan",
    "edsger",
    "barbara",
    "ken",
    "margaret",
    "linus",
    "donald",
    "frances",
    "john",
    "radia",
    "guido",
    "hedy",
    "dennis",
    "katherine",
    "tim",
    "sophie",
    "niklaus",
    "leslie",
)


@dataclass(frozen=True)
class DemoOptions:
    host: str = "127.0.0.1"
    port: int = 8000
    players: int = 12
    pace: float = 1.5
    duration: float = 0.0


def demo_settings(settings: Settings) -> tuple[Settings, str | None]:
    """The demo's settings: a throwaway database unless one was configured, and room to register
    every simulated player from one address."""
    scratch = None
    if "SCOREBOARD_DATABASE_URL" not in os.environ:
        scratch = tempfile.mkdtemp(prefix="scoreboard-demo-")
        settings = replace(settings, database_url=f"sqlite:///{scratch}/scoreboard.db")
    return replace(settings, rate_limit_register="off", log_level="warning"), scratch


async def run_demo(settings: Settings, options: DemoOptions) -> None:
    settings, scratch = demo_settings(settings)
    app = create_app(settings)
    config = uvicorn.Config(app, host=options.host, port=options.port, **uvicorn_options(settings))
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            await serving  # raises the bind error, for instance
            return
        await asyncio.sleep(0.05)
    base = f"http://{options.host}:{options.port}"
    print(
        f"scoreboard demo: open {base}/ (try two tabs) — {options.players} players, one action every"
        f" ~{options.pace}s each" + (f", for {options.duration:g}s" if options.duration else "; Ctrl-C stops")
    )
    if scratch:
        print(f"scoreboard demo: throwaway database in {scratch}")
    try:
        await _play(base, options)
    finally:
        server.should_exit = True
        await serving


async def _play(base: str, options: DemoOptions) -> None:
    deadline = time.monotonic() + options.duration if options.duration else None
    async with httpx.AsyncClient(timeout=10) as http:
        players = [await _join(ScoreboardClient(base, http=http), i) for i in range(options.players)]
        tasks = [asyncio.create_task(_player(p, options.pace, deadline)) for p in players]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*tasks, return_exceptions=True)


@dataclass
class Player:
    client: ScoreboardClient
    skill: float


async def _join(client: ScoreboardClient, index: int) -> Player:
    name = f"{NAMES[index % len(NAMES)]}-{secrets.token_hex(2)}"
    password = secrets.token_urlsafe(16)
    await client.register(name, password, display_name=name.split("-")[0].capitalize())
    await client.login(name, password)
    return Player(client, random.uniform(0.5, 2.0))


async def _player(player: Player, pace: float, deadline: float | None) -> None:
    """Completes actions at a random pace; a refused one (a quota, a restart) is simply skipped."""
    while deadline is None or time.monotonic() < deadline:
        pause = random.expovariate(player.skill / pace)
        if deadline is not None and time.monotonic() + pause >= deadline:
            return
        await asyncio.sleep(pause)
        with contextlib.suppress(ScoreboardError):
            ticket = await player.client.request_action()
            await player.client.complete_action(ticket.action_id)
