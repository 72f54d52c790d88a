"""In-process revocation list, pruned as tokens expire."""

from __future__ import annotations

import heapq
import time


class MemoryRevocations:
    def __init__(self) -> None:
        self._until: dict[str, int] = {}
        self._expiry: list[tuple[int, str]] = []
        self._users: dict[str, tuple[int, int]] = {}  # user -> (issued up to, until)

    async def revoke(self, token_id: str, expires_at: int) -> None:
        self._prune()
        self._until[token_id] = expires_at
        heapq.heappush(self._expiry, (expires_at, token_id))

    async def revoke_user(self, user_id: str, issued_up_to: int, until: int) -> None:
        now = time.time()
        self._users = {u: mark for u, mark in self._users.items() if mark[1] >= now}
        self._users[user_id] = (issued_up_to, until)

    async def is_revoked(self, token_id: str, user_id: str = "", issued_at: int = 0) -> bool:
        now = time.time()
        until = self._until.get(token_id)
        if until is not None and until >= now:
            return True
        mark = self._users.get(user_id) if user_id else None
        return mark is not None and mark[1] >= now and issued_at <= mark[0]

    async def close(self) -> None:
        return None

    def _prune(self) -> None:
        now = time.time()
        while self._expiry and self._expiry[0][0] < now:
            _, token_id = heapq.heappop(self._expiry)
            if self._until.get(token_id, now + 1) < now:
                del self._until[token_id]
