"""How many live connections one process holds: a cap in total and one per client address.

Each open WebSocket costs a task, a mailbox and socket buffers; without caps one client (or a few)
could open connections until the process runs out of memory or file descriptors. The address is
the one uvicorn reports: the peer, or the `X-Forwarded-For` client when the peer is a trusted proxy
(`SCOREBOARD_TRUSTED_PROXIES`), so behind NGINX the cap applies per real client.

A loopback peer is held only to the total: it is a process on this host — a local proxy not (yet)
listed as trusted, which would otherwise squeeze every client into one address's share, or a load
test — not a remote client hogging the server.
"""

from __future__ import annotations

from collections import Counter
from enum import StrEnum

from scoreboard.domain.addresses import is_loopback


class Refusal(StrEnum):
    ADDRESS_LIMIT = "address_limit"
    TOTAL_LIMIT = "total_limit"


class ConnectionGate:
    """Admits a connection while both caps allow; each admission must be released once."""

    def __init__(self, total: int, per_address: int) -> None:
        self.total, self.per_address = total, per_address
        self._open: Counter[str] = Counter()
        self._count = 0

    def admit(self, address: str) -> Refusal | None:
        """Takes a slot for `address`, or says which cap refuses it (and takes nothing)."""
        if self._open[address] >= self.per_address and not is_loopback(address):
            return Refusal.ADDRESS_LIMIT
        if self._count >= self.total:
            return Refusal.TOTAL_LIMIT
        self._open[address] += 1
        self._count += 1
        return None

    def release(self, address: str) -> None:
        self._count -= 1
        self._open[address] -= 1
        if self._open[address] <= 0:
            del self._open[address]

    @property
    def open(self) -> int:
        return self._count
