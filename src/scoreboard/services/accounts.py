"""Accounts: register, log in (throttled), refresh with rotation and reuse detection, log out."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta

from scoreboard.auth.passwords import Passwords
from scoreboard.auth.tokens import LEEWAY_SECONDS, AccessTokens
from scoreboard.domain import accounts as policy
from scoreboard.domain.addresses import is_loopback
from scoreboard.domain.errors import AccountBanned, InvalidCredentials, InvalidInput, InvalidRefreshToken
from scoreboard.domain.model import Principal, Role, User
from scoreboard.observability.logging import get_logger
from scoreboard.observability.metrics import Metrics
from scoreboard.observability.security import security_event
from scoreboard.revocations.base import Revocations
from scoreboard.services.clock import Clock
from scoreboard.services.limits import LimitSet, Throttle
from scoreboard.services.login_guard import LoginGuard, LoginKeys
from scoreboard.store.base import RefreshRecord, Store

log = get_logger("scoreboard.accounts")


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    expires_in: int
    refresh_token: str
    session_id: str
    token_id: str
    csrf_token: str


def _digest(refresh_token: str) -> str:
    return hashlib.sha256(refresh_token.encode()).hexdigest()


class AccountService:
    def __init__(
        self,
        store: Store,
        passwords: Passwords,
        tokens: AccessTokens,
        revocations: Revocations,
        throttle: Throttle,
        limits: LimitSet,
        clock: Clock,
        metrics: Metrics,
        refresh_ttl_seconds: int,
    ) -> None:
        self._store, self._passwords, self._tokens = store, passwords, tokens
        self._revocations, self._throttle, self._limits = revocations, throttle, limits
        self._clock, self._metrics = clock, metrics
        self._refresh_ttl = timedelta(seconds=refresh_ttl_seconds)
        self._guard = LoginGuard(throttle, limits, clock)

    async def register(
        self,
        username: str,
        password: str,
        display_name: str | None,
        address: str,
        roles: tuple[Role, ...] = (Role.USER,),
    ) -> User:
        if not is_loopback(address):
            await self._throttle.hit(self._limits.register, f"addr:{address}")
        username = policy.normalize_username(username)
        shown = (display_name if display_name is not None else username).strip()
        for problem in (
            policy.username_problem(username),
            policy.password_problem(password),
            policy.display_name_problem(shown),
        ):
            if problem:
                raise InvalidInput(problem)
        user = User(str(uuid.uuid4()), username, shown, roles)
        await self._store.create_user(user, await self._passwords.hash(password), self._clock())
        log.info("user.registered", user_id=user.user_id, roles=list(roles))
        return user

    async def login(self, username: str, password: str, address: str) -> TokenPair:
        """The same answer, at the same cost, for an unknown user and a wrong password: an unknown
        user's password is checked against a decoy hash."""
        keys = LoginKeys.of(username, address)
        await self._guard.admit(keys)
        credentials = await self._store.credentials(username)
        hashed = credentials.password_hash if credentials else None
        if not await self._passwords.verify(hashed, password) or credentials is None:
            await self._guard.failed(keys)
            self._metrics.logins.labels("failed").inc()
            security_event(self._metrics, "login_failed", username=username)
            raise InvalidCredentials()
        await self._guard.succeeded(keys)
        user = credentials.user
        if credentials.banned:
            # Said only to whoever knows the password: it reveals nothing to a guesser.
            self._metrics.logins.labels("banned").inc()
            log.warning("login.banned", user_id=user.user_id, address=address)
            raise AccountBanned()
        if self._passwords.needs_rehash(credentials.password_hash):
            # The cost parameters changed since this hash was made: upgrade it while we hold the password.
            await self._store.update_password_hash(user.user_id, await self._passwords.hash(password))
            log.info("password.rehashed", user_id=user.user_id)
        self._metrics.logins.labels("succeeded").inc()
        log.info("login.succeeded", user_id=user.user_id)
        return await self._new_pair(user, family_id=str(uuid.uuid4()))

    async def refresh(self, refresh_token: str) -> TokenPair:
        now = self._clock()
        record = await self._store.spend_refresh(_digest(refresh_token), now)
        if record is None:
            raise InvalidRefreshToken("unknown")
        if record.spent:
            security_event(
                self._metrics, "refresh_reused", user_id=record.user_id, family_id=record.family_id
            )
            raise InvalidRefreshToken("already used; every token of its family is now revoked")
        if record.revoked or record.expires_at <= now:
            raise InvalidRefreshToken("revoked or expired")
        user = await self._store.user(record.user_id)
        if user is None:
            raise InvalidRefreshToken("its user no longer exists")
        return await self._new_pair(user, family_id=record.family_id)

    async def logout(self, caller: Principal) -> None:
        # Tokens are honoured up to the leeway past `exp`, so the revocation must outlive that too.
        await self._revocations.revoke(caller.token_id, caller.expires_at + LEEWAY_SECONDS)
        if caller.session_id:
            await self._store.revoke_family(caller.session_id)
        log.info("logout", user_id=caller.user_id)

    async def _new_pair(self, user: User, family_id: str) -> TokenPair:
        now = self._clock()
        access = self._tokens.issue(
            user.user_id, [str(r) for r in user.roles], family_id, int(now.timestamp())
        )
        refresh_token = secrets.token_urlsafe(32)
        await self._store.save_refresh(
            RefreshRecord(
                _digest(refresh_token),
                family_id,
                user.user_id,
                now + self._refresh_ttl,
                spent=False,
                revoked=False,
            )
        )
        return TokenPair(
            access.token,
            self._tokens.ttl_seconds,
            refresh_token,
            family_id,
            access.token_id,
            access.csrf,
        )
