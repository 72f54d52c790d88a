"""The in-process Broker: the embedded default.

Delivery is scheduled on the event loop (`call_soon`, first in first out, so publish order holds)
rather than made inside `publish`: the request that changed the board answers without waiting for
the fan-out to every local subscriber, as it would with a networked broker.
"""

from __future__ import annotations

import asyncio

from scoreboard.broker.base import OnMessage


class MemoryBroker:
    def __init__(self) -> None:
        self._subscribers: list[OnMessage] = []

    async def publish(self, message: bytes) -> None:
        loop = asyncio.get_running_loop()
        for deliver in self._subscribers:
            loop.call_soon(deliver, message)

    async def subscribe(self, on_message: OnMessage) -> None:
        self._subscribers.append(on_message)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self._subscribers.clear()
