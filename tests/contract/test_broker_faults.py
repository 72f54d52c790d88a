"""The network brokers survive their server or link failing: a subscriber comes back by itself and
hears what is published after the return; a publisher fails promptly or waits a bounded time.
Faults are injected with a private redis-server (killed and restarted, TLS) and a TCP proxy (cut,
silenced) — never by touching the machine's shared servers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, MutableMapping
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from tests.backends import AMQP_URL, require
from tests.contract.brokers import (
    Inbox,
    private_exchanges,
    publish_until_delivered,
    rabbitmq_broker,
    redis_broker,
)
from tests.faults import FaultProxy, PrivateRedis, TlsFiles

QUIET_SECONDS = 0.3


@pytest.fixture
async def amqp_proxy() -> AsyncIterator[FaultProxy]:
    require("rabbitmq")
    proxy = await FaultProxy.start(("127.0.0.1", 5672))
    yield proxy
    await proxy.close()


def via(proxy: FaultProxy) -> str:
    return AMQP_URL.replace("127.0.0.1:5672", f"127.0.0.1:{proxy.port}")


def without_probes(messages: list[bytes]) -> list[bytes]:
    return [m for m in messages if not m.startswith(b"probe-")]


def events(logs: list[MutableMapping[str, Any]]) -> list[str]:
    return [str(entry["event"]) for entry in logs]


# Redis: the server goes away and comes back --------------------------------------------------


@pytest.mark.redis
async def test_redis_subscriber_returns_by_itself_after_redis_is_killed_and_restarted(
    private_redis: PrivateRedis,
) -> None:
    subscriber = redis_broker(private_redis.url, heartbeat_seconds=0.5)
    publisher = redis_broker(private_redis.url, channel=subscriber.channel)
    inbox = Inbox()
    try:
        with capture_logs() as logs:
            await subscriber.subscribe(inbox)
            await publisher.publish(b"before")
            await inbox.wait_for(1)

            private_redis.kill()
            await asyncio.sleep(0.3)
            private_redis.start()
            await publish_until_delivered(publisher.publish, inbox)
            after = [b"after-%d" % i for i in range(50)]
            for message in after:
                await publisher.publish(message)
            await inbox.wait_for(len(inbox.messages) + 1)
            await asyncio.sleep(QUIET_SECONDS)

        assert without_probes(inbox.messages) == [b"before", *after]
        assert "broker.reconnecting" in events(logs)
        assert "broker.resubscribed" in events(logs)
    finally:
        await subscriber.close()
        await publisher.close()


@pytest.mark.redis
async def test_redis_subscription_made_while_redis_is_down_starts_when_it_comes_up(tmp_path: Path) -> None:
    server = PrivateRedis(tmp_path)  # port chosen, not started
    subscriber = redis_broker(server.url, heartbeat_seconds=0.5)
    publisher = redis_broker(server.url, channel=subscriber.channel)
    inbox = Inbox()
    try:
        started = time.monotonic()
        await subscriber.subscribe(inbox)  # returns after the first failed attempt; retries behind
        assert time.monotonic() - started < 3

        server.start()
        assert await publish_until_delivered(publisher.publish, inbox)
    finally:
        await subscriber.close()
        await publisher.close()
        server.kill()


@pytest.mark.redis
async def test_redis_publish_fails_promptly_while_redis_is_down(private_redis: PrivateRedis) -> None:
    publisher = redis_broker(private_redis.url)
    try:
        await publisher.publish(b"up")
        private_redis.kill()
        started = time.monotonic()

        with pytest.raises(Exception, match=r"(?i)connect|closed"):
            await publisher.publish(b"down")  # the caller (outbox) keeps the event and replays it

        assert time.monotonic() - started < 5
        with pytest.raises(Exception, match=r"(?i)connect|closed"):
            await publisher.ping()
    finally:
        await publisher.close()


@pytest.mark.redis
async def test_a_silent_redis_link_is_noticed_by_the_heartbeat(private_redis: PrivateRedis) -> None:
    proxy = await FaultProxy.start(("127.0.0.1", private_redis.port))
    url = f"redis://127.0.0.1:{proxy.port}/0"
    subscriber = redis_broker(url, heartbeat_seconds=0.3)
    publisher = redis_broker(private_redis.url, channel=subscriber.channel)
    inbox = Inbox()
    try:
        with capture_logs() as logs:
            await subscriber.subscribe(inbox)
            proxy.silence()  # packets vanish; no reset, no close
            await asyncio.sleep(1.5)
            proxy.restore()
            await publish_until_delivered(publisher.publish, inbox)

        reconnects = [e for e in logs if e["event"] == "broker.reconnecting"]
        assert reconnects
        assert "no answer from Redis" in str(reconnects[0]["error"])
    finally:
        await subscriber.close()
        await publisher.close()
        await proxy.close()


@pytest.mark.redis
async def test_redis_broker_works_over_tls(tmp_path: Path) -> None:
    server = PrivateRedis(tmp_path, tls=TlsFiles.create(tmp_path))
    server.start()
    subscriber = redis_broker(server.url)
    publisher = redis_broker(server.url, channel=subscriber.channel)
    inbox = Inbox()
    try:
        assert server.url.startswith("rediss://")
        await subscriber.subscribe(inbox)
        await publisher.publish(b"encrypted")
        assert await inbox.wait_for(1) == [b"encrypted"]
        await publisher.ping()
    finally:
        await subscriber.close()
        await publisher.close()
        server.kill()


@pytest.mark.redis
async def test_redis_broker_refuses_a_server_it_cannot_verify(tmp_path: Path) -> None:
    server = PrivateRedis(tmp_path, tls=TlsFiles.create(tmp_path))
    server.start()
    unverified = server.url.split("?")[0]  # rediss:// without our private CA
    publisher = redis_broker(unverified)
    try:
        with pytest.raises(Exception, match=r"(?i)certificate"):
            await publisher.ping()
    finally:
        await publisher.close()
        server.kill()


# RabbitMQ: the connection drops --------------------------------------------------------------


@pytest.mark.rabbitmq
async def test_rabbitmq_subscriber_returns_by_itself_after_its_connection_is_cut(
    amqp_proxy: FaultProxy,
) -> None:
    async with private_exchanges() as prefix:
        subscriber = rabbitmq_broker(via(amqp_proxy), prefix=prefix, reconnect_interval=0.2)
        publisher = rabbitmq_broker(prefix=prefix)
        inbox = Inbox()
        try:
            with capture_logs() as logs:
                await subscriber.subscribe(inbox)
                await publisher.publish(b"before")
                await inbox.wait_for(1)

                amqp_proxy.cut()
                await publisher.publish(b"lost")  # no instance queue exists: nobody hears it
                await asyncio.sleep(0.5)
                amqp_proxy.restore()
                await publish_until_delivered(publisher.publish, inbox)
                after = [b"after-%d" % i for i in range(50)]
                for message in after:
                    await publisher.publish(message)
                await asyncio.sleep(QUIET_SECONDS)

            assert without_probes(inbox.messages) == [b"before", *after]
            assert "broker.disconnected" in events(logs)
            assert "broker.reconnected" in events(logs)
            await subscriber.ping()
        finally:
            await subscriber.close()
            await publisher.close()


@pytest.mark.rabbitmq
async def test_rabbitmq_subscription_made_while_rabbitmq_is_unreachable_starts_when_it_is_back(
    amqp_proxy: FaultProxy,
) -> None:
    async with private_exchanges() as prefix:
        subscriber = rabbitmq_broker(via(amqp_proxy), prefix=prefix, reconnect_interval=0.2)
        publisher = rabbitmq_broker(prefix=prefix)
        inbox = Inbox()
        try:
            amqp_proxy.cut()
            with capture_logs() as logs:
                started = time.monotonic()
                await subscriber.subscribe(inbox)  # logs, and keeps trying behind
                assert time.monotonic() - started < 3

                amqp_proxy.restore()
                assert await publish_until_delivered(publisher.publish, inbox)

            assert "broker.reconnecting" in events(logs)
            assert "broker.resubscribed" in events(logs)
        finally:
            await subscriber.close()
            await publisher.close()


@pytest.mark.rabbitmq
async def test_rabbitmq_publish_waits_for_the_connection_to_return(amqp_proxy: FaultProxy) -> None:
    async with private_exchanges() as prefix:
        publisher = rabbitmq_broker(via(amqp_proxy), prefix=prefix, reconnect_interval=0.2)
        subscriber = rabbitmq_broker(prefix=prefix)
        inbox = Inbox()
        try:
            await subscriber.subscribe(inbox)
            await publisher.publish(b"first")
            amqp_proxy.cut()
            await asyncio.sleep(0.1)  # the client notices the reset
            with pytest.raises(ConnectionError):
                await publisher.ping()
            asyncio.get_running_loop().call_later(0.5, amqp_proxy.restore)

            await publisher.publish(b"second")  # returns once RabbitMQ confirmed it

            assert await inbox.wait_for(2) == [b"first", b"second"]
        finally:
            await subscriber.close()
            await publisher.close()


@pytest.mark.rabbitmq
async def test_rabbitmq_publish_gives_up_after_its_timeout(amqp_proxy: FaultProxy) -> None:
    async with private_exchanges() as prefix:
        publisher = rabbitmq_broker(
            via(amqp_proxy), prefix=prefix, reconnect_interval=0.2, publish_timeout=0.5
        )
        try:
            await publisher.publish(b"first")
            amqp_proxy.cut()
            started = time.monotonic()

            with pytest.raises(TimeoutError):
                await publisher.publish(b"never confirmed")

            assert time.monotonic() - started < 2
        finally:
            await publisher.close()


@pytest.mark.rabbitmq
async def test_rabbitmq_instance_queue_is_gone_after_close() -> None:
    require("rabbitmq")
    import aio_pika
    from aio_pika.exceptions import ChannelNotFoundEntity

    async with private_exchanges() as prefix:
        broker = rabbitmq_broker(prefix=prefix)
        await broker.subscribe(Inbox())
        await broker.close()

        connection = await aio_pika.connect(AMQP_URL)
        try:
            channel = await connection.channel()
            with pytest.raises(ChannelNotFoundEntity):
                await channel.declare_queue(broker.queue_name, passive=True)
        finally:
            await connection.close()
