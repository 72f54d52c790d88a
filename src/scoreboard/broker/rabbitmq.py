"""The RabbitMQ Broker (aio-pika): board fan-out through a fanout exchange, plus score events for
other services through a durable topic exchange.

Board fan-out (the Broker port). A durable fanout exchange, `scoreboard.board` by default. Each
instance declares one exclusive, auto-delete queue `scoreboard.board.<random>` bound to it and
consumes without acknowledgements: at-most-once, in publish order from one publisher. Updates are
published transient (they are worthless after a restart), with publisher confirms: `publish` returns
once RabbitMQ accepted the message.

Score events (the ScoreEvents capability). A durable topic exchange, `scoreboard.events` by default.
Every applied score event is published persistent (delivery mode 2) and confirmed, with

    routing key   score.updated
    content type  application/json
    message id    the event id (as a string)      type  score.updated      app id  scoreboard
    body          {"user_id": "…", "display_name": "…", "score": 1234,
                   "reached_at": "2026-11-26T23:51:11.123456+00:00", "event_id": 42}

`score` is the user's new absolute score and `reached_at` when it was reached (ISO 8601, UTC). A
consumer declares its own durable queue and binds it with `score.updated` (or `score.#` for any
future `score.*` key). Delivery is at-least-once (the outbox may replay an event): drop repeats by
`event_id`, and keep the newest `reached_at` per user. With no queue bound, events are dropped.

Reconnection. `connect_robust`: when the connection drops, aio-pika reconnects every
`reconnect_interval` seconds (1 s here), re-declares the exchanges and this instance's queue,
re-binds it and resumes consuming; `broker.disconnected` and `broker.reconnected` are logged. What
was published during the gap never reaches this instance (the hub sees the jump in `seq`). A publish
that fails because the link is down waits up to `publish_timeout` seconds for it to come back and is
sent again, so a message may arrive twice: the hub drops a repeated `seq`, event consumers a
repeated `event_id`.

TLS: `amqps://user:password@host:5671/vhost` encrypts the link and verifies the server against the
system's CAs; `?cafile=/path/ca.pem` names a private CA, `&certfile=…&keyfile=…` a client
certificate. `?heartbeat=15` (seconds) detects a dead link sooner than the default 60.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import uuid
from dataclasses import dataclass
from datetime import UTC
from typing import Any

import aio_pika
import msgspec
from aio_pika.abc import (
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractRobustChannel,
    AbstractRobustConnection,
)
from aio_pika.exceptions import CONNECTION_EXCEPTIONS, DeliveryError

from scoreboard.broker.base import OnMessage
from scoreboard.domain.model import ScoreEntry
from scoreboard.observability.logging import get_logger

BOARD_EXCHANGE = "scoreboard.board"
EVENTS_EXCHANGE = "scoreboard.events"
SCORE_UPDATED = "score.updated"

log = get_logger("scoreboard.broker.rabbitmq")

_encoder = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class _Links:
    connection: AbstractRobustConnection
    channel: AbstractRobustChannel  # publishing, with confirms
    board: AbstractExchange


class RabbitMQBroker:
    def __init__(
        self,
        url: str,
        exchange: str = BOARD_EXCHANGE,
        events_exchange: str = EVENTS_EXCHANGE,
        *,
        reconnect_interval: float = 1.0,
        publish_timeout: float = 5.0,
    ) -> None:
        self.exchange = exchange
        self.events_exchange = events_exchange
        self.queue_name = f"{exchange}.{uuid.uuid4().hex}"
        self._url = url
        self._reconnect_interval = reconnect_interval
        self._publish_timeout = publish_timeout
        self._lock = asyncio.Lock()
        self._links: _Links | None = None
        self._events: AbstractExchange | None = None
        self._subscribed = False
        self._retrying: asyncio.Task[None] | None = None

    @classmethod
    def from_url(cls, url: str, prefix: str = "", **options: Any) -> RabbitMQBroker:
        """A broker on `url` (`amqp://` or `amqps://`) whose exchanges are `<prefix>scoreboard.board`
        and `<prefix>scoreboard.events`; nothing connects until first used."""
        return cls(url, prefix + BOARD_EXCHANGE, prefix + EVENTS_EXCHANGE, **options)

    async def publish(self, message: bytes) -> None:
        links = await self._open()
        await self._confirmed(links, links.board, aio_pika.Message(message), "")

    async def score_applied(self, entry: ScoreEntry, event_id: int) -> None:
        links = await self._open()
        await self._confirmed(
            links, await self._events_exchange(links), score_event(entry, event_id), SCORE_UPDATED
        )

    async def subscribe(self, on_message: OnMessage) -> None:
        """Declare this instance's queue and consume it. If RabbitMQ cannot be reached, log it and
        keep trying in the background (like a dropped connection) instead of failing the start."""
        if self._subscribed:
            raise RuntimeError(f"already subscribed to {self.exchange!r}: one subscription per process")
        self._subscribed = True
        try:
            await self._consume(on_message)
        except CONNECTION_EXCEPTIONS as error:
            self._log_retry(1, error)
            self._retrying = asyncio.create_task(self._consume_later(on_message))

    async def _consume(self, on_message: OnMessage) -> None:
        links = await self._open()
        channel = await links.connection.channel(publisher_confirms=False)
        exchange = await channel.declare_exchange(self.exchange, aio_pika.ExchangeType.FANOUT, durable=True)
        queue = await channel.declare_queue(self.queue_name, exclusive=True, auto_delete=True)
        await queue.bind(exchange)

        async def deliver(message: AbstractIncomingMessage) -> None:
            try:
                on_message(message.body)
            except Exception:
                log.exception("broker.callback_failed", broker="rabbitmq")

        await queue.consume(deliver, no_ack=True)

    async def _consume_later(self, on_message: OnMessage) -> None:
        for attempt in itertools.count(2):
            await asyncio.sleep(self._reconnect_interval)
            try:
                await self._consume(on_message)
            except CONNECTION_EXCEPTIONS as error:
                self._log_retry(attempt, error)
            else:
                log.info("broker.resubscribed", broker="rabbitmq", exchange=self.exchange, attempts=attempt)
                return

    def _log_retry(self, attempt: int, error: BaseException) -> None:
        log.warning(
            "broker.reconnecting",
            broker="rabbitmq",
            exchange=self.exchange,
            attempt=attempt,
            error=str(error) or repr(error),
        )

    async def ping(self) -> None:
        links = await self._open()
        if links.connection.is_closed or not links.connection.connected.is_set():
            raise ConnectionError(f"RabbitMQ connection for {self.exchange!r} is down, reconnecting")

    async def close(self) -> None:
        if self._retrying is not None:
            self._retrying.cancel()
            await asyncio.gather(self._retrying, return_exceptions=True)
            self._retrying = None
        links, self._links, self._events = self._links, None, None
        if links is not None:
            await links.connection.close()

    async def _open(self) -> _Links:
        async with self._lock:
            if self._links is None:
                self._links = await self._connect()
            return self._links

    async def _connect(self) -> _Links:
        connection = await aio_pika.connect_robust(
            self._url,
            reconnect_interval=self._reconnect_interval,
            timeout=self._publish_timeout,
            client_properties={"connection_name": f"scoreboard pid {os.getpid()}"},
        )
        try:
            channel = await connection.channel(publisher_confirms=True)
            board = await channel.declare_exchange(self.exchange, aio_pika.ExchangeType.FANOUT, durable=True)
        except BaseException:
            await connection.close()
            raise
        connection.close_callbacks.add(self._on_lost)
        connection.reconnect_callbacks.add(self._on_reconnected)
        return _Links(connection, channel, board)

    async def _events_exchange(self, links: _Links) -> AbstractExchange:
        if self._events is None:
            self._events = await links.channel.declare_exchange(
                self.events_exchange, aio_pika.ExchangeType.TOPIC, durable=True
            )
        return self._events

    async def _confirmed(
        self, links: _Links, exchange: AbstractExchange, message: aio_pika.Message, routing_key: str
    ) -> None:
        """Publish and wait for the server's confirm; while the link is down, wait (bounded) for the
        robust connection to restore the channel and send again."""
        async with asyncio.timeout(self._publish_timeout):
            while True:
                try:
                    await exchange.publish(message, routing_key, mandatory=False)
                    return
                except DeliveryError:
                    raise  # the server refused it: sending again will not help
                except CONNECTION_EXCEPTIONS as error:
                    log.warning("broker.publish_retry", broker="rabbitmq", error=str(error) or repr(error))
                    await asyncio.sleep(0.05)
                    await links.channel.ready()

    def _on_lost(self, _: Any, error: BaseException | None = None) -> None:
        if self._links is not None:  # not our own close()
            log.warning("broker.disconnected", broker="rabbitmq", exchange=self.exchange, error=str(error))

    def _on_reconnected(self, _: Any) -> None:
        log.info("broker.reconnected", broker="rabbitmq", exchange=self.exchange)


def score_event(entry: ScoreEntry, event_id: int) -> aio_pika.Message:
    """The persistent `score.updated` message for one applied event."""
    body = {
        "user_id": entry.user_id,
        "display_name": entry.display_name,
        "score": entry.score,
        "reached_at": entry.reached_at.astimezone(UTC).isoformat(),
        "event_id": event_id,
    }
    return aio_pika.Message(
        _encoder.encode(body),
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=str(event_id),
        type=SCORE_UPDATED,
        app_id="scoreboard",
        timestamp=entry.reached_at,
    )
