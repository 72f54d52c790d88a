"""Password hashing with argon2id at the OWASP Password Storage Cheat Sheet's cost: m=19 MiB
(19456 KiB), t=2, p=1 (its first, lowest-memory option; RFC 9106's low-memory profile, m=64 MiB t=3
p=4, needs more than three times the memory per login). A hash made with other
parameters is replaced at the next successful login."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_OWASP = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1, type=Type.ID)


class Passwords:
    """Hashes and checks passwords off the event loop (argon2 is deliberately slow)."""

    def __init__(self, hasher: PasswordHasher = _OWASP) -> None:
        self._hasher = hasher
        # Verifying against this when the user does not exist makes both answers cost the same.
        self._decoy = hasher.hash("not a real password, only spends the same time")

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        return await asyncio.to_thread(self._verify, password_hash or self._decoy, password)

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
