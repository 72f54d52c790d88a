"""In-process revocation list, pruned as tokens expire."""

from __future__ import annotations

import heapq
import time


class MemoryRevocations:
    def __init__(self) -> None:
        self._until: dict[str, int] = {}
        self._expiry: list[tuple[int, str]] = []

    async def revoke(self, token_id: str, expires_at: int) -> None:
        self._prune()
        self._until[token_id] = expires_at
        heapq.heappush(self._expiry, (expires_at, token_id))

    async def is_revoked(self, token_id: str) -> bool:
        until = self._until.get(token_id)
        return until is not None and until >= time.time()

    async def close(self) -> None:
        return None

    def _prune(self) -> None:
        now = time.time()
        while self._expiry and self._expiry[0][0] < now:
            _, token_id = heapq.heappop(self._expiry)
            if self._until.get(token_id, now + 1) < now:
                del self._until[token_id]
