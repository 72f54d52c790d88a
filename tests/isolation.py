"""Names a test owns on a shared server, and removing everything under them afterwards."""

from __future__ import annotations

import uuid

from tests.backends import AMQP_URL, REDIS_URL


def unique(prefix: str = "test", separator: str = ":") -> str:
    """A fresh name prefix, e.g. `test:3f2a…:` for Redis keys or `test.3f2a….` for exchanges."""
    return f"{prefix}{separator}{uuid.uuid4().hex}{separator}"


async def delete_redis_prefix(prefix: str, url: str = REDIS_URL) -> int:
    """Delete every key starting with `prefix`; how many there were."""
    from redis.asyncio import Redis

    client = Redis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await client.unlink(*keys)
        return len(keys)
    finally:
        await client.aclose()


async def delete_exchanges(*names: str, url: str = AMQP_URL) -> None:
    """Delete RabbitMQ exchanges (missing ones are fine)."""
    import aio_pika

    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        for name in names:
            await channel.exchange_delete(name)
    finally:
        await connection.close()
