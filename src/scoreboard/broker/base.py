"""The Broker: carries every published board change to every instance's hub.

Messages are the encoded `update` frame (bytes), encoded once by the publisher. Delivery is
at-most-once per subscriber and in publish order from one publisher; a subscriber that misses
messages (a reconnect) sees a gap in `seq` and recovers from history or a snapshot.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

OnMessage = Callable[[bytes], None]


class Broker(Protocol):
    async def publish(self, message: bytes) -> None:
        """Send `message` to every subscriber of every instance."""

    async def subscribe(self, on_message: OnMessage) -> None:
        """Register this process's one subscription; `on_message` runs on the event loop, must not
        block, and is called in publish order."""

    async def ping(self) -> None:
        """Raise when the broker cannot be reached."""

    async def close(self) -> None:
        """Stop delivering and release connections."""
