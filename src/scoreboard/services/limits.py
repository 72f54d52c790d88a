"""The named rate limits of the service, and turning a refusal into a RateLimited error."""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TypeVar

from limits import RateLimitItemPerHour

from scoreboard.config import Settings
from scoreboard.domain.backoff import Backoff
from scoreboard.domain.errors import RateLimited
from scoreboard.limiter.base import ALLOWED, NO_STREAK, RateLimiter, Rules, Verdict
from scoreboard.observability.logging import get_logger
from scoreboard.observability.metrics import Metrics
from scoreboard.observability.security import security_event

log = get_logger("scoreboard.limits")
T = TypeVar("T")
BACKOFF = "login_backoff"


@dataclass(frozen=True, slots=True)
class LimitSet:
    score_updates: Rules
    login: Rules
    register: Rules
    actions: Rules
    address: Rules
    """Per client address, across ticket issuance and score updates (one budget)."""
    login_attempts: Rules
    """The hourly cap on login attempts per username (OWASP ASVS V2.2.1)."""
    backoff: Backoff

    @classmethod
    def from_settings(cls, settings: Settings) -> LimitSet:
        login = Rules.parse("login", settings.rate_limit_login)
        # `RATE_LIMIT_LOGIN=off` turns every login defence off (tests, benchmarks), not only the rule.
        per_hour = settings.login_attempts_per_hour if login.enabled else 0
        return cls(
            score_updates=Rules.parse("score_updates", settings.rate_limit_score_updates),
            login=login,
            register=Rules.parse("register", settings.rate_limit_register),
            actions=Rules.parse("actions", settings.rate_limit_actions or settings.rate_limit_score_updates),
            address=Rules.parse("address", settings.rate_limit_per_address),
            login_attempts=Rules("login_attempts", (RateLimitItemPerHour(per_hour),) if per_hour else ()),
            backoff=Backoff(
                settings.login_backoff_free, settings.login_backoff_max_seconds if login.enabled else 0
            ),
        )


def quota_rules(action_type: str, per_hour: int) -> Rules:
    return Rules(f"quota:{action_type}", (RateLimitItemPerHour(per_hour),))


class Throttle:
    """Applies named rules through the RateLimiter port and counts refusals. If the limiter's backend
    is down every call admits (fails open) and says so: scores stay exactly-once through the Store,
    and an outage must not become a lock-out."""

    def __init__(self, limiter: RateLimiter, metrics: Metrics) -> None:
        self._limiter = limiter
        self._metrics = metrics

    async def hit(self, rules: Rules, key: str) -> None:
        if rules.enabled:
            self._refuse_unless(
                rules, key, await self._ask(self._limiter.hit(rules, key), rules.name, ALLOWED)
            )

    async def peek(self, rules: Rules, key: str) -> None:
        if rules.enabled:
            self._refuse_unless(
                rules, key, await self._ask(self._limiter.peek(rules, key), rules.name, ALLOWED)
            )

    async def count(self, rules: Rules, key: str) -> None:
        """Record an attempt without refusing this one (failed logins count toward the next)."""
        if rules.enabled:
            await self._ask(self._limiter.hit(rules, key), rules.name, ALLOWED)

    async def check_streak(self, backoff: Backoff, key: str, now: float) -> None:
        """Refuse while `key` is still waiting out the back-off of its failure streak."""
        if backoff.enabled:
            streak = await self._ask(self._limiter.streak(key, now), BACKOFF, NO_STREAK)
            wait = backoff.retry_after(streak.failures, streak.last_at, now)
            if wait > 0:
                self._metrics.rate_limited.labels(BACKOFF).inc()
                security_event(self._metrics, "rate_limited", limit=BACKOFF, subject=key)
                raise RateLimited("failed logins", wait, backoff.free, 0, "", f'"{BACKOFF}";r=0;t={wait}')

    async def strike(self, backoff: Backoff, key: str, now: float, forget_after: int) -> None:
        if backoff.enabled:
            await self._ask(self._limiter.strike(key, now, forget_after), BACKOFF, NO_STREAK)

    async def forgive(self, backoff: Backoff, key: str) -> None:
        if backoff.enabled:
            await self._ask(self._limiter.forgive(key), BACKOFF, None)

    async def _ask(self, call: Awaitable[T], limit: str, fallback: T) -> T:
        try:
            return await call
        except Exception as error:
            self._metrics.limiter_errors.inc()
            log.warning("ratelimit.unavailable", limit=limit, error=str(error))
            return fallback

    def _refuse_unless(self, rules: Rules, key: str, verdict: Verdict) -> None:
        if verdict.allowed:
            return
        self._metrics.rate_limited.labels(rules.name).inc()
        security_event(self._metrics, "rate_limited", limit=rules.name, subject=key)
        wait = verdict.reset_seconds
        current = f"{rules.policy_id(verdict.window)};r={verdict.remaining};t={wait}"
        what = rules.name.replace("_", " ")
        raise RateLimited(what, wait, verdict.limit, verdict.remaining, rules.policy, current)
