"""Login throttling, per username and per client address, shared by every instance through the
RateLimiter port (Redis when REDIS_URL is set).

Three defences, each refusing with 429 before the password is checked:
- back-off: after a streak of failures a key waits, the wait doubling with each further failure;
- RATE_LIMIT_LOGIN: failed attempts per key in a sliding window;
- the hourly cap: at most LOGIN_ATTEMPTS_PER_HOUR attempts per username, counted atomically *before*
  the check, so concurrent guesses on many instances cannot slip past it (OWASP ASVS V2.2.1).
Keys are built from the folded username whether or not the account exists, so the answers say
nothing about which accounts exist.
"""

from __future__ import annotations

from dataclasses import dataclass

from scoreboard.domain.accounts import fold_username
from scoreboard.domain.backoff import STREAK_MEMORY_SECONDS
from scoreboard.services.clock import Clock
from scoreboard.services.limits import LimitSet, Throttle


@dataclass(frozen=True, slots=True)
class LoginKeys:
    user: str
    address: str

    @classmethod
    def of(cls, username: str, address: str) -> LoginKeys:
        return cls(f"user:{fold_username(username)}", f"addr:{address}")

    @property
    def both(self) -> tuple[str, str]:
        return self.user, self.address


class LoginGuard:
    def __init__(self, throttle: Throttle, limits: LimitSet, clock: Clock) -> None:
        self._throttle, self._limits, self._clock = throttle, limits, clock

    async def admit(self, keys: LoginKeys) -> None:
        """Refuse (RateLimited) an attempt that must wait; otherwise spend one of the hourly attempts."""
        now = self._now()
        for key in keys.both:
            await self._throttle.check_streak(self._limits.backoff, key, now)
        for key in keys.both:
            await self._throttle.peek(self._limits.login, key)
        await self._throttle.hit(self._limits.login_attempts, keys.user)

    async def failed(self, keys: LoginKeys) -> None:
        now = self._now()
        for key in keys.both:
            await self._throttle.count(self._limits.login, key)
            await self._throttle.strike(self._limits.backoff, key, now, STREAK_MEMORY_SECONDS)

    async def succeeded(self, keys: LoginKeys) -> None:
        """The right password ends the username's streak. The address keeps its streak (one valid
        account must not launder a spray of guesses), and the hourly count stays spent (else every
        login of the real user would hand an attacker a fresh budget)."""
        await self._throttle.forgive(self._limits.backoff, keys.user)

    def _now(self) -> float:
        return self._clock().timestamp()
