"""Client addresses, and which ones per-address limits apply to.

A loopback peer is a process on this host: a local proxy not (yet) listed in
SCOREBOARD_TRUSTED_PROXIES — through which every client would share one address's budget — or a
test or benchmark. Per-address budgets (registration, tickets and updates together, WebSocket
connections) hold remote clients; per-user and per-username limits hold everyone.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache


@lru_cache(maxsize=4096)
def is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False
