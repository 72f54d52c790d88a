"""The Broker contract, run against every adapter.

Each factory yields a publisher and a subscriber. For the in-memory broker (one process) they are the
same object; a network adapter yields two connections to one server, so every test also proves
delivery across instances. A new adapter joins by adding one entry to BROKERS: "redis" (a private
channel on 127.0.0.1:6379) and "rabbitmq" (private exchanges on 127.0.0.1:5672) come from brokers.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from scoreboard.broker.memory import MemoryBroker
from scoreboard.domain.model import Board, RankedEntry
from scoreboard.realtime.messages import encode_update
from tests.contract.brokers import REMOTE_BROKERS, Pair, broker_params

DELIVERY_TIMEOUT_SECONDS = 5.0
QUIET_SECONDS = 0.3


@asynccontextmanager
async def memory_pair(tmp_path: Path) -> AsyncIterator[Pair]:
    broker = MemoryBroker()
    try:
        yield Pair(broker, broker)
    finally:
        await broker.close()


BROKERS: dict[str, Callable[[Path], AbstractAsyncContextManager[Pair]]] = {
    "memory": memory_pair,
    **REMOTE_BROKERS,
}


@pytest.fixture(params=broker_params(BROKERS))
async def pair(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Pair]:
    async with BROKERS[request.param](tmp_path) as adapter:
        yield adapter


@dataclass
class Inbox:
    """The subscriber's callback: records every message; tests wait for a count."""

    messages: list[bytes] = field(default_factory=list)
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def __call__(self, message: bytes) -> None:
        self.messages.append(message)
        self._arrived.set()

    async def wait_for(self, count: int) -> list[bytes]:
        async with asyncio.timeout(DELIVERY_TIMEOUT_SECONDS):
            while len(self.messages) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return self.messages


async def subscribed(pair: Pair) -> Inbox:
    inbox = Inbox()
    await pair.subscriber.subscribe(inbox)
    return inbox


def update(seq: int, name: str = "Ann") -> bytes:
    return encode_update(Board(1, seq, (RankedEntry(1, "u-1", name, seq),)))


async def test_a_published_message_reaches_the_subscriber(pair: Pair) -> None:
    inbox = await subscribed(pair)
    await pair.publisher.publish(update(1))
    assert await inbox.wait_for(1) == [update(1)]


async def test_messages_arrive_in_publish_order(pair: Pair) -> None:
    inbox = await subscribed(pair)
    sent = [update(seq) for seq in range(1, 201)]
    for message in sent:
        await pair.publisher.publish(message)
    assert await inbox.wait_for(len(sent)) == sent


@pytest.mark.parametrize(
    "message",
    [
        update(1, 'Zoë 🎯 "quoted" \\ back\nslash'),
        update(2, "x" * 64) * 20,
        bytes(range(256)),
    ],
    ids=["unicode-json", "large", "every-byte"],
)
async def test_message_bytes_arrive_unchanged(pair: Pair, message: bytes) -> None:
    inbox = await subscribed(pair)
    await pair.publisher.publish(message)
    (received,) = await inbox.wait_for(1)
    assert type(received) is bytes
    assert received == message


async def test_ping_answers_while_open(pair: Pair) -> None:
    await pair.publisher.ping()
    await pair.subscriber.ping()


async def test_close_stops_delivery(pair: Pair) -> None:
    inbox = await subscribed(pair)
    await pair.publisher.publish(update(1))
    await inbox.wait_for(1)

    await pair.subscriber.close()
    await pair.publisher.publish(update(2))  # in memory the same broker: it must reach no one
    await asyncio.sleep(QUIET_SECONDS)
    assert inbox.messages == [update(1)]
