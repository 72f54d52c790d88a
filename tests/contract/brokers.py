"""Broker pairs for the network adapters, and helpers for tests that wait on deliveries.

Each factory yields a publisher and a subscriber: two instances on two connections to the machine's
server, under names no other test uses (a private Redis channel; private RabbitMQ exchanges, deleted
afterwards). test_broker.py runs the Broker contract on them; test_broker_remote.py adds ordering
across instances, faults and score events.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from scoreboard.broker.base import Broker
from tests.backends import AMQP_URL, REDIS_URL, require
from tests.isolation import delete_exchanges, unique

DELIVERY_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class Pair:
    """Two instances' brokers (one object twice for the in-process broker)."""

    publisher: Broker
    subscriber: Broker


def redis_broker(url: str = REDIS_URL, channel: str | None = None, **options: Any) -> Any:
    from scoreboard.broker.redis import RedisBroker

    return RedisBroker.from_url(url, channel=channel or unique("test") + "board", **options)


def rabbitmq_broker(url: str = AMQP_URL, prefix: str | None = None, **options: Any) -> Any:
    from scoreboard.broker.rabbitmq import RabbitMQBroker

    return RabbitMQBroker.from_url(url, prefix=prefix or unique("test", "."), **options)


@asynccontextmanager
async def redis_pair(tmp_path: Path) -> AsyncIterator[Pair]:
    require("redis")
    channel = unique("test") + "board"
    publisher, subscriber = redis_broker(channel=channel), redis_broker(channel=channel)
    try:
        yield Pair(publisher, subscriber)
    finally:
        await subscriber.close()
        await publisher.close()


@asynccontextmanager
async def rabbitmq_pair(tmp_path: Path) -> AsyncIterator[Pair]:
    require("rabbitmq")
    async with private_exchanges() as prefix:
        publisher, subscriber = rabbitmq_broker(prefix=prefix), rabbitmq_broker(prefix=prefix)
        try:
            yield Pair(publisher, subscriber)
        finally:
            await subscriber.close()
            await publisher.close()


@asynccontextmanager
async def private_exchanges() -> AsyncIterator[str]:
    """A RabbitMQ name prefix for one test; its board and events exchanges are deleted after."""
    from scoreboard.broker.rabbitmq import BOARD_EXCHANGE, EVENTS_EXCHANGE

    prefix = unique("test", ".")
    try:
        yield prefix
    finally:
        await delete_exchanges(prefix + BOARD_EXCHANGE, prefix + EVENTS_EXCHANGE)


SERVER_MARKS = {"redis": pytest.mark.redis, "rabbitmq": pytest.mark.rabbitmq}


def broker_params(names: Iterable[str]) -> list[Any]:
    """Fixture params for these adapters, each marked with its server's marker (`-m "not rabbitmq"`)."""
    return [pytest.param(name, marks=SERVER_MARKS.get(name, ())) for name in names]


REMOTE_BROKERS: dict[str, Callable[[Path], AbstractAsyncContextManager[Pair]]] = {
    "redis": redis_pair,
    "rabbitmq": rabbitmq_pair,
}


@dataclass
class Inbox:
    """A subscriber's callback: records every message; tests wait for a count or a match."""

    messages: list[bytes] = field(default_factory=list)
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def __call__(self, message: bytes) -> None:
        self.messages.append(message)
        self._arrived.set()

    async def wait_for(self, count: int, timeout: float = DELIVERY_TIMEOUT_SECONDS) -> list[bytes]:
        async with asyncio.timeout(timeout):
            while len(self.messages) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return self.messages


async def publish_until_delivered(
    publish: Callable[[bytes], Awaitable[None]], inbox: Inbox, timeout: float = 15.0
) -> bytes:
    """Publish numbered probes until one arrives (the subscriber is back); the first that did."""
    async with asyncio.timeout(timeout):
        for attempt in range(1_000_000):
            seen = len(inbox.messages)
            try:
                await publish(b"probe-%d" % attempt)
            except Exception:  # the publisher's own link may still be recovering
                await asyncio.sleep(0.1)
                continue
            await asyncio.sleep(0.05)
            if len(inbox.messages) > seen:
                return inbox.messages[seen]
    raise AssertionError("unreachable")
