"""Two app instances sharing PostgreSQL and Redis, publishing at once through each broker.

Whatever instance takes an update, every subscriber of every instance must see one seq order: no
gaps, no repeats, the same frames everywhere; and the final board must equal the Store's truth.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from scoreboard.config import Settings
from scoreboard.domain.actions import ActionPolicy
from scoreboard.realtime.hub import Hub, Mailbox
from tests.backends import AMQP_URL, REDIS_URL, require
from tests.conftest import Api, User
from tests.isolation import delete_exchanges, delete_redis_prefix, unique
from tests.postgres_support import private_database

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
UPDATES = 60


@pytest.fixture
async def database() -> AsyncIterator[str]:
    async with private_database() as url:
        yield url


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    name = unique("test")
    yield name
    await delete_redis_prefix(name)


async def frames_of(mailbox: Mailbox) -> list[dict[str, Any]]:
    received = []
    while (frame := await mailbox.next(idle_seconds=0.5)) is not None:
        received.append(json.loads(frame.text))
    return received


async def start_pair(
    make_api: Callable[..., Any], settings: Settings, database: str, prefix: str, broker_url: str | None
) -> tuple[Api, Api]:
    shared = {
        "database_url": database,
        "redis_url": REDIS_URL,
        "redis_prefix": prefix,
        "broker_url": broker_url,
        "action_policy": ActionPolicy.OPEN,
    }
    first: Api = await make_api(settings, **shared)
    second: Api = await make_api(settings, **shared)
    return first, second


async def run_updates(first: Api, second: Api) -> list[int]:
    """UPDATES concurrent updates by four users, alternating between the instances (they share the
    signing secret, so a token from one is good on the other)."""
    users: list[User] = [await first.user() for _ in range(4)]

    async def one(i: int) -> int:
        api = first if i % 2 else second
        response = await api.update(users[i % len(users)], str(uuid.uuid4()))
        return response.status_code

    return list(await asyncio.gather(*(one(i) for i in range(UPDATES))))


@pytest.mark.parametrize("broker", ["redis", "rabbitmq"])
async def test_two_instances_publishing_at_once_give_every_subscriber_one_gapless_order(
    make_api: Callable[..., Any], settings: Settings, database: str, prefix: str, broker: str
) -> None:
    require("rabbitmq" if broker == "rabbitmq" else "redis")
    broker_url = AMQP_URL if broker == "rabbitmq" else None
    try:
        first, second = await start_pair(make_api, settings, database, prefix, broker_url)
        hubs: list[Hub] = [first.app.state.hub, second.app.state.hub]
        mailboxes = [Mailbox(hub, "ws", capacity=10_000) for hub in hubs for _ in range(2)]
        for mailbox in mailboxes:
            mailbox.hub.subscribe(mailbox)

        codes = await run_updates(first, second)
        received = [await frames_of(mailbox) for mailbox in mailboxes]
        truth = await first.app.state.container.store.all_scores()
        board = (await second.http.get("/api/leaderboard")).json()
    finally:
        if broker == "rabbitmq":
            await delete_exchanges(f"{prefix}scoreboard.board", f"{prefix}scoreboard.events")

    assert codes == [200] * UPDATES
    updates = [[(f["epoch"], f["seq"]) for f in frames if f["type"] == "update"] for frames in received]
    epoch = updates[0][0][0]
    assert updates[0] == [(epoch, seq) for seq in range(1, len(updates[0]) + 1)], "gapless, in order"
    assert all(seen == updates[0] for seen in updates), "every subscriber saw the same sequence"
    assert all(frames == received[0] for frames in received), "and the same frames"
    assert sum(e.score for e in truth) == UPDATES
    assert {e["user_id"]: e["score"] for e in board["entries"]} == {e.user_id: e.score for e in truth}
    assert received[0][-1]["top"] == board["entries"]
