"""The network brokers (Redis Pub/Sub, RabbitMQ) beyond the shared contract: every instance hears
every publisher in its publish order, and RabbitMQ announces score events durably for other
services. Faults are in test_broker_faults.py."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from scoreboard.broker.base import ScoreEvents
from scoreboard.broker.memory import MemoryBroker
from scoreboard.domain.model import ScoreEntry
from tests.backends import AMQP_URL, require
from tests.contract.brokers import (
    REMOTE_BROKERS,
    Inbox,
    Pair,
    broker_params,
    private_exchanges,
    rabbitmq_broker,
)


@pytest.fixture(params=broker_params(REMOTE_BROKERS))
async def pair(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Pair]:
    async with REMOTE_BROKERS[request.param](tmp_path) as adapter:
        yield adapter


# Fan-out and ordering across instances -------------------------------------------------------


async def test_each_publisher_is_heard_in_its_own_publish_order(pair: Pair, tmp_path: Path) -> None:
    """Two instances publish at once on one channel: the subscriber sees each one's messages
    complete and in the order that instance published them."""
    inbox = Inbox()
    await pair.subscriber.subscribe(inbox)
    sent = {name: [b"%s:%d" % (name, i) for i in range(150)] for name in (b"A", b"B")}

    async def run(publisher: Any, messages: list[bytes]) -> None:
        for message in messages:
            await publisher.publish(message)

    await asyncio.gather(run(pair.publisher, sent[b"A"]), run(pair.subscriber, sent[b"B"]))

    received = await inbox.wait_for(300)
    for name, messages in sent.items():
        assert [m for m in received if m.startswith(name + b":")] == messages


async def test_every_instance_hears_every_message(pair: Pair) -> None:
    first, second = Inbox(), Inbox()
    await pair.subscriber.subscribe(first)
    await pair.publisher.subscribe(second)  # the publishing instance hears itself too
    sent = [b"m%d" % i for i in range(50)]

    for message in sent:
        await pair.publisher.publish(message)

    assert await first.wait_for(50) == sent
    assert await second.wait_for(50) == sent


async def test_a_second_subscription_in_one_process_is_refused(pair: Pair) -> None:
    await pair.subscriber.subscribe(Inbox())

    with pytest.raises(RuntimeError, match="one subscription per process"):
        await pair.subscriber.subscribe(Inbox())


async def test_a_callback_that_raises_does_not_stop_delivery(pair: Pair) -> None:
    inbox = Inbox()

    def on_message(message: bytes) -> None:
        inbox(message)
        if message == b"bad":
            raise ValueError("a bug in the hub")

    await pair.subscriber.subscribe(on_message)
    for message in (b"bad", b"good"):
        await pair.publisher.publish(message)

    assert await inbox.wait_for(2) == [b"bad", b"good"]


# RabbitMQ: score events for other services ---------------------------------------------------


@pytest.mark.rabbitmq
async def test_score_events_reach_a_durable_queue_persistent_and_confirmed() -> None:
    require("rabbitmq")
    import aio_pika

    async with private_exchanges() as prefix:
        broker = rabbitmq_broker(prefix=prefix)
        connection = await aio_pika.connect(AMQP_URL)
        channel = await connection.channel()
        exchange = await channel.declare_exchange(
            broker.events_exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await channel.declare_queue(f"{prefix}consumer", durable=True)
        await queue.bind(exchange, "score.updated")
        reached_at = datetime(2026, 11, 26, 23, 51, 11, 123456, tzinfo=UTC)
        try:
            await broker.score_applied(ScoreEntry("u-1", "Zoë", 1234, reached_at), 42)

            message = await queue.get(timeout=5)
            assert message is not None
            await message.ack()
        finally:
            await queue.delete(if_unused=False, if_empty=False)
            await connection.close()
            await broker.close()

    assert message.routing_key == "score.updated"
    assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert message.content_type == "application/json"
    assert message.message_id == "42"
    assert json.loads(message.body) == {
        "user_id": "u-1",
        "display_name": "Zoë",
        "score": 1234,
        "reached_at": "2026-11-26T23:51:11.123456+00:00",
        "event_id": 42,
    }


async def test_only_the_rabbitmq_broker_announces_score_events() -> None:
    from scoreboard.broker.rabbitmq import RabbitMQBroker
    from scoreboard.broker.redis import RedisBroker

    redis = RedisBroker.from_url("redis://127.0.0.1:1/0")  # never connects
    assert isinstance(RabbitMQBroker(AMQP_URL), ScoreEvents)
    assert not isinstance(redis, ScoreEvents)
    assert not isinstance(MemoryBroker(), ScoreEvents)
    await redis.close()
