"""Revocations: access-token ids (`jti`) that must be refused until the token would expire anyway."""

from __future__ import annotations

from typing import Protocol


class Revocations(Protocol):
    async def revoke(self, token_id: str, expires_at: int) -> None:
        """Refuse `token_id` from now until `expires_at` (Unix seconds); on every instance sharing
        the adapter's backend."""

    async def is_revoked(self, token_id: str) -> bool:
        """Whether `token_id` was revoked and has not expired yet."""

    async def close(self) -> None:
        """Release connections."""
