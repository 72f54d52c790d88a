"""The Broker: carries every published board change to every instance's hub.

Messages are the encoded `update` frame (bytes), encoded once by the publisher. Delivery is
at-most-once per subscriber and in publish order from one publisher; a subscriber that misses
messages (a reconnect) sees a gap in `seq` and recovers from history or a snapshot.

ScoreEvents is an optional second capability of a broker: announcing every applied score event to
other services (durably), apart from the board fan-out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

from scoreboard.domain.model import ScoreEntry

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


@runtime_checkable
class ScoreEvents(Protocol):
    async def score_applied(self, entry: ScoreEntry, event_id: int) -> None:
        """Announce that the user's score became `entry.score` (committed event `event_id`).

        Returns once the server has durably accepted the event; raises otherwise, and the caller
        retries (the outbox). Delivery is therefore at-least-once and a replay may arrive late:
        consumers drop repeats by `event_id`, and since each event carries the user's absolute score
        and when it was reached, keeping the newest `reached_at` per user converges."""
