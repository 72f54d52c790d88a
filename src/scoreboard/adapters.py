"""Which adapter serves each port, chosen from the settings' URLs. Drivers are imported lazily, so
the embedded default needs none of them installed."""

from __future__ import annotations

from dataclasses import dataclass

from scoreboard.broker.base import Broker
from scoreboard.config import Settings, SettingsError
from scoreboard.leaderboard.base import Leaderboard
from scoreboard.limiter.base import RateLimiter
from scoreboard.revocations.base import Revocations
from scoreboard.store.base import Store

BOARD_CHANNEL = "scoreboard:board"


@dataclass(frozen=True)
class Backends:
    store: Store
    board: Leaderboard
    broker: Broker
    limiter: RateLimiter
    revocations: Revocations


def open_store(settings: Settings) -> Store:
    url = settings.database_url
    if url.startswith("sqlite:///"):
        from scoreboard.store.sqlite import SqliteStore

        return SqliteStore.from_url(url)
    from scoreboard.store.postgres import PostgresStore

    return PostgresStore.from_url(url, read_url=settings.database_read_url)


def open_backends(settings: Settings) -> Backends:
    """Every adapter, constructed but not yet connected."""
    store = open_store(settings)
    if settings.redis_url is None:
        if settings.broker_url:
            raise SettingsError(
                "SCOREBOARD_BROKER_URL needs SCOREBOARD_REDIS_URL: instances can only share a board"
                " through Redis"
            )
        return _embedded(store)
    return _shared(settings, store, settings.redis_url)


def _embedded(store: Store) -> Backends:
    from scoreboard.broker.memory import MemoryBroker
    from scoreboard.leaderboard.memory import MemoryLeaderboard
    from scoreboard.limiter.memory import MemoryRateLimiter
    from scoreboard.revocations.memory import MemoryRevocations

    return Backends(store, MemoryLeaderboard(), MemoryBroker(), MemoryRateLimiter(), MemoryRevocations())


def _shared(settings: Settings, store: Store, redis_url: str) -> Backends:
    from scoreboard.leaderboard.redis import RedisLeaderboard
    from scoreboard.limiter.redis import RedisRateLimiter
    from scoreboard.revocations.redis import RedisRevocations

    prefix = settings.redis_prefix
    broker_url = settings.broker_url or redis_url
    broker: Broker
    if broker_url.startswith("amqp"):
        from scoreboard.broker.rabbitmq import RabbitMQBroker

        broker, lua_channel = RabbitMQBroker.from_url(broker_url, prefix=prefix), ""
    else:
        from scoreboard.broker.redis import RedisBroker

        channel = prefix + BOARD_CHANNEL
        broker = RedisBroker.from_url(broker_url, channel=channel)
        # On the same Redis, the apply script publishes itself: seq order is publish order.
        lua_channel = channel if broker_url == redis_url else ""
    return Backends(
        store,
        RedisLeaderboard.from_url(redis_url, prefix=prefix, publish_channel=lua_channel),
        broker,
        RedisRateLimiter.from_url(redis_url, prefix=f"{prefix}scoreboard:"),
        RedisRevocations.from_url(redis_url, prefix=f"{prefix}scoreboard:"),
    )
