"""The Redis Pub/Sub Broker: every instance SUBSCRIBEs to one channel and PUBLISH reaches them all.

Channel: `scoreboard:board` unless configured (the app prefixes it with SCOREBOARD_REDIS_PREFIX). The
Redis leaderboard's apply script may PUBLISH to the same channel itself, so seq order is publish order.

Delivery is Redis Pub/Sub's: at-most-once, in order from one publishing connection, and nothing is
kept for a subscriber that is not connected. One reader task holds this process's subscription on a
connection of its own. When that connection breaks (Redis restarted, link cut) or falls silent (no
answer to the heartbeat PING within two heartbeats), the reader logs `broker.reconnecting`, waits a
bounded, jittered backoff (50 ms doubling up to 2 s), connects again, re-subscribes and logs
`broker.resubscribed`. Messages published during the gap are lost: the hub sees the jump in `seq`,
and clients recover through `since` or a snapshot.

TLS: a `rediss://` URL encrypts the link and verifies the server's certificate against the system's
CAs and its host name. Query parameters tune it: `ssl_ca_certs=/path/ca.pem` (a private CA),
`ssl_certfile=…&ssl_keyfile=…` (a client certificate, for `tls-auth-clients yes`),
`ssl_check_hostname=false` (a certificate without the host's name). For example
`rediss://:password@cache.internal:6380/0?ssl_ca_certs=/etc/scoreboard/redis-ca.pem`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from scoreboard.broker.base import OnMessage
from scoreboard.observability.logging import get_logger
from scoreboard.tasks import stop

DEFAULT_CHANNEL = "scoreboard:board"

log = get_logger("scoreboard.broker.redis")

_TIMEOUTS: dict[str, Any] = {"socket_connect_timeout": 2.0, "socket_timeout": 2.0, "socket_keepalive": True}


@dataclass(frozen=True, slots=True)
class Backoff:
    """Waits between reconnection attempts: doubling from `first` up to `cap`, jittered so that
    many instances do not reconnect in lockstep after a restart."""

    first: float = 0.05
    cap: float = 2.0

    def delay(self, attempt: int) -> float:
        """How long to wait before attempt number `attempt + 1`; no wait after a success (0)."""
        if attempt <= 0:
            return 0.0
        ceiling = min(self.cap, self.first * 2.0 ** min(attempt - 1, 30))
        return ceiling / 2 + random.uniform(0, ceiling / 2)


class RedisBroker:
    def __init__(
        self,
        publisher: Redis,
        subscriber: Redis,
        channel: str = DEFAULT_CHANNEL,
        *,
        heartbeat_seconds: float = 5.0,
        backoff: Backoff = Backoff(),
    ) -> None:
        self.channel = channel
        self._publisher = publisher
        self._subscriber = subscriber
        self._heartbeat = heartbeat_seconds
        self._backoff = backoff
        self._reader: asyncio.Task[None] | None = None

    @classmethod
    def from_url(cls, url: str, channel: str = DEFAULT_CHANNEL, **options: Any) -> RedisBroker:
        """A broker on `url` (`redis://` or `rediss://`); nothing connects until first used."""
        retry = Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), retries=2)
        publisher = Redis.from_url(url, retry=retry, **_TIMEOUTS)
        # The reader reconnects itself (and logs it), so its connection never retries silently.
        subscriber = Redis.from_url(url, retry=Retry(NoBackoff(), retries=0), **_TIMEOUTS)
        return cls(publisher, subscriber, channel, **options)

    async def publish(self, message: bytes) -> None:
        await self._publisher.publish(self.channel, message)

    async def subscribe(self, on_message: OnMessage) -> None:
        """Start the reader; returns once subscribed, or once the first attempt failed (the reader
        then keeps trying in the background, logging each attempt)."""
        if self._reader is not None:
            raise RuntimeError(f"already subscribed to {self.channel!r}: one subscription per process")
        first_attempt: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(
            self._read_forever(on_message, first_attempt), name=f"redis-broker:{self.channel}"
        )
        await first_attempt

    async def ping(self) -> None:
        await self._publisher.ping()

    async def close(self) -> None:
        if self._reader is not None:
            await stop(self._reader)
            self._reader = None
        await self._subscriber.aclose()
        await self._publisher.aclose()

    async def _read_forever(self, on_message: OnMessage, first_attempt: asyncio.Future[None]) -> None:
        failures = 0
        while True:
            pubsub = self._subscriber.pubsub()
            async with contextlib.aclosing(pubsub):
                try:
                    await self._subscribed(pubsub)
                    if failures:
                        log.info(
                            "broker.resubscribed", broker="redis", channel=self.channel, attempts=failures
                        )
                    failures = 0
                    _settle(first_attempt)
                    await self._listen(pubsub, on_message)
                except Exception as error:
                    failures += 1
                    self._log_reconnect(failures, error)
                    _settle(first_attempt)
            await asyncio.sleep(self._backoff.delay(failures))

    def _log_reconnect(self, failures: int, error: Exception) -> None:
        log.warning(
            "broker.reconnecting",
            broker="redis",
            channel=self.channel,
            attempt=failures,
            error=str(error) or type(error).__name__,
        )

    async def _subscribed(self, pubsub: PubSub) -> None:
        """SUBSCRIBE and wait for the server's confirmation: a message published after this returns
        is delivered."""
        await pubsub.subscribe(self.channel)
        async with asyncio.timeout(self._heartbeat):
            while True:
                reply = await pubsub.get_message(timeout=self._heartbeat)
                if reply is not None and reply["type"] == "subscribe":
                    return

    async def _listen(self, pubsub: PubSub, on_message: OnMessage) -> None:
        """Deliver messages until the connection fails. A PING every heartbeat proves the link is
        alive even when nothing is published; silence for two heartbeats counts as a broken link."""
        loop = asyncio.get_running_loop()
        heard = pinged = loop.time()
        while True:
            reply = await pubsub.get_message(timeout=self._heartbeat / 2)
            now = loop.time()
            if reply is not None:
                heard = now
                if reply["type"] == "message":
                    _deliver(on_message, reply["data"])
            if now - heard > 2 * self._heartbeat:
                raise RedisConnectionError(f"no answer from Redis for {now - heard:.1f} s")
            if now - pinged >= self._heartbeat:
                await pubsub.ping()
                pinged = now


def _settle(first_attempt: asyncio.Future[None]) -> None:
    if not first_attempt.done():
        first_attempt.set_result(None)


def _deliver(on_message: OnMessage, data: bytes) -> None:
    try:
        on_message(data)
    except Exception:
        log.exception("broker.callback_failed", broker="redis")
