"""The in-process Broker: the embedded default. Delivery is a direct, ordered function call."""

from __future__ import annotations

from scoreboard.broker.base import OnMessage


class MemoryBroker:
    def __init__(self) -> None:
        self._subscribers: list[OnMessage] = []

    async def publish(self, message: bytes) -> None:
        for deliver in self._subscribers:
            deliver(message)

    async def subscribe(self, on_message: OnMessage) -> None:
        self._subscribers.append(on_message)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self._subscribers.clear()
