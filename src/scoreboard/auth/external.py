"""An external identity provider: its public keys (a JWKS URL or file) and what its tokens may claim.

Verification itself stays synchronous and in memory (tokens.py): the keys are fetched here, in a
worker thread, at start-up, every `refresh_seconds`, and when a token names a key id we do not know
(at most once per `min_refresh_seconds`, so random key ids cannot make us hammer the provider).
PyJWKClient does the fetching, but not its own caching: its cache refreshes inside the verification
call, which would block the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from jwt import PyJWK, PyJWKClient, PyJWKSet

from scoreboard.auth.keys import ASYMMETRIC
from scoreboard.domain.model import Principal, Role
from scoreboard.observability.logging import get_logger
from scoreboard.tasks import stop

log = get_logger("scoreboard.auth.external")

FETCH_TIMEOUT_SECONDS = 5.0


class UnusableClaims(Exception):
    """The token verified but says nothing we can act on; `reason` is safe to log."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True, slots=True)
class ExternalKey:
    kid: str
    algorithm: str
    key: Any


def usable_keys(jwks: Iterable[PyJWK]) -> dict[str, ExternalKey]:
    """Signing keys with a key id and an asymmetric algorithm; a shared secret (`kty: oct`) published
    in a key set is never trusted."""
    keys = {}
    for jwk in jwks:
        if jwk.key_id and jwk.public_key_use in {"sig", None} and jwk.algorithm_name in ASYMMETRIC:
            keys[jwk.key_id] = ExternalKey(jwk.key_id, jwk.algorithm_name, jwk.key)
    return keys


class ExternalProvider:
    """Tokens of one issuer, verified with the keys of its JWKS."""

    def __init__(
        self,
        issuer: str,
        audience: str,
        *,
        url: str | None = None,
        file: Path | None = None,
        roles: Iterable[str] = (Role.SERVICE,),
        roles_claim: str = "roles",
        refresh_seconds: float = 300.0,
        min_refresh_seconds: float = 10.0,
        on_fetch: Callable[[str], None] = lambda outcome: None,
    ) -> None:
        if (url is None) == (file is None):
            raise ValueError("an external provider needs exactly one of a JWKS URL or file")
        self.issuer, self.audience = issuer, audience
        self.roles, self.roles_claim = frozenset(roles), roles_claim
        self.keys: dict[str, ExternalKey] = {}
        self._url, self._file = url, file
        self._client = PyJWKClient(url, cache_jwk_set=False, timeout=FETCH_TIMEOUT_SECONDS) if url else None
        self._refresh_seconds, self._min_refresh_seconds = refresh_seconds, min_refresh_seconds
        self._on_fetch = on_fetch
        self._last_forced = -math.inf
        self._inflight: asyncio.Task[bool] | None = None

    @property
    def source(self) -> str:
        return self._url or str(self._file)

    def read(self) -> dict[str, ExternalKey]:
        """Blocking: the usable keys of the key set at the URL or in the file."""
        if self._client is not None:
            keys = usable_keys(self._client.get_signing_keys(refresh=True))
        else:
            assert self._file is not None
            keys = usable_keys(PyJWKSet.from_json(self._file.read_text("utf-8")))
        if not keys:
            raise ValueError("the key set has no asymmetric signing key with a kid")
        return keys

    async def load(self) -> None:
        """The first fetch, at start-up. An unreadable file is a configuration error; an unreachable
        URL is logged (the provider may be down) and retried when a token needs it."""
        try:
            self.keys = await asyncio.to_thread(self.read)
        except (OSError, ValueError, jwt.PyJWTError) as error:
            self._on_fetch("failed")
            if self._file is not None:
                raise ValueError(f"cannot read the JWKS file {self._file}: {error}") from None
            log.error("jwks.unavailable", source=self.source, error=str(error))
            return
        self._on_fetch("fetched")
        log.info("jwks.loaded", source=self.source, kids=sorted(self.keys))

    async def refresh(self) -> bool:
        """Fetch the key set again for a token with an unknown key id, unless such a fetch was made in
        the last `min_refresh_seconds`; whether it was fetched. Concurrent callers share one fetch."""
        if self._inflight is None:
            if time.monotonic() - self._last_forced < self._min_refresh_seconds:
                return False
            self._last_forced = time.monotonic()
            self._inflight = asyncio.create_task(self._refetch())
        task = self._inflight
        try:
            return await asyncio.shield(task)
        finally:
            if task.done() and self._inflight is task:
                self._inflight = None

    async def _refetch(self) -> bool:
        try:
            keys = await asyncio.to_thread(self.read)
        except (OSError, ValueError, jwt.PyJWTError) as error:
            # Keep the keys we have: a provider outage must not log everybody out.
            self._on_fetch("failed")
            log.warning("jwks.refresh_failed", source=self.source, error=str(error))
            return False
        self._on_fetch("fetched")
        if keys.keys() != self.keys.keys():
            log.info("jwks.changed", source=self.source, kids=sorted(keys))
        self.keys = keys
        return True

    @contextlib.asynccontextmanager
    async def kept_fresh(self) -> AsyncIterator[None]:
        """Load the keys, then refresh them every `refresh_seconds` until the block ends, so a key the
        provider withdrew stops verifying new tokens."""
        await self.load()

        async def refreshing() -> None:
            while True:
                await asyncio.sleep(self._refresh_seconds)
                await self._refetch()

        task = asyncio.create_task(refreshing())
        try:
            yield
        finally:
            await stop(task)

    def principal(self, claims: dict[str, Any], token: str) -> Principal:
        """Who an external token speaks for: its `sub`, with the roles of its roles claim that
        JWT_EXTERNAL_ROLES admits. `account` stays False until the caller confirms that `sub` is a
        scoreboard user (a `service` identity never is one)."""
        granted = self._claimed_roles(claims.get(self.roles_claim)) & self.roles
        if not granted:
            raise UnusableClaims(f"no accepted role in the {self.roles_claim!r} claim")
        subject, token_id = claims["sub"], claims.get("jti")
        if not isinstance(subject, str) or not subject:
            raise UnusableClaims("malformed sub claim")
        if not isinstance(token_id, str) or not token_id:
            # Revocation is by token id; a provider that sets none gets the token's digest.
            token_id = hashlib.sha256(token.encode()).hexdigest()[:32]
        return Principal(
            user_id=subject,
            roles=frozenset(granted),
            token_id=f"ext:{token_id}",  # never equal to one of our own jti
            session_id="",
            expires_at=int(claims["exp"]),
            account=False,
        )

    def _claimed_roles(self, value: Any) -> frozenset[str]:
        if isinstance(value, str):  # an OAuth-style space-separated `scope`
            return frozenset(value.split())
        if isinstance(value, list) and all(isinstance(r, str) for r in value):
            return frozenset(value)
        if value is None:
            return frozenset()
        raise UnusableClaims(f"malformed {self.roles_claim!r} claim")
