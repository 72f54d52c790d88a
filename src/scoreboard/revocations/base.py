"""Revocations: access-token ids (`jti`) that must be refused until the token would expire anyway,
and users whose every token issued up to a moment must be refused (a ban)."""

from __future__ import annotations

from typing import Protocol


class Revocations(Protocol):
    async def revoke(self, token_id: str, expires_at: int) -> None:
        """Refuse `token_id` from now until `expires_at` (Unix seconds); on every instance sharing
        the adapter's backend."""

    async def revoke_user(self, user_id: str, issued_up_to: int, until: int) -> None:
        """Refuse every token of `user_id` issued at or before `issued_up_to` (Unix seconds, the
        token's `iat`), from now until `until` (when the last such token has expired); on every
        instance sharing the adapter's backend. A later call replaces an earlier one."""

    async def is_revoked(self, token_id: str, user_id: str = "", issued_at: int = 0) -> bool:
        """Whether `token_id` was revoked and has not expired yet, or (when `user_id` is given) the
        user's tokens issued at `issued_at` are refused. One round trip to a shared backend."""

    async def close(self) -> None:
        """Release connections."""
