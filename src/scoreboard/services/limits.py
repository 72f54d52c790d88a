"""The named rate limits of the service, and turning a refusal into a RateLimited error."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from limits import RateLimitItemPerHour

from scoreboard.config import Settings
from scoreboard.domain.errors import RateLimited
from scoreboard.limiter.base import ALLOWED, RateLimiter, Rules, Verdict
from scoreboard.observability.logging import get_logger
from scoreboard.observability.metrics import Metrics
from scoreboard.observability.security import security_event

log = get_logger("scoreboard.limits")


@dataclass(frozen=True, slots=True)
class LimitSet:
    score_updates: Rules
    login: Rules
    register: Rules
    actions: Rules

    @classmethod
    def from_settings(cls, settings: Settings) -> LimitSet:
        return cls(
            score_updates=Rules.parse("score_updates", settings.rate_limit_score_updates),
            login=Rules.parse("login", settings.rate_limit_login),
            register=Rules.parse("register", settings.rate_limit_register),
            actions=Rules.parse("actions", settings.rate_limit_actions),
        )


def quota_rules(action_type: str, per_hour: int) -> Rules:
    return Rules(f"quota:{action_type}", (RateLimitItemPerHour(per_hour),))


class Throttle:
    """Applies named rules through the RateLimiter port and counts refusals."""

    def __init__(self, limiter: RateLimiter, metrics: Metrics) -> None:
        self._limiter = limiter
        self._metrics = metrics

    async def hit(self, rules: Rules, key: str) -> None:
        if rules.enabled:
            self._refuse_unless(rules, key, await self._ask(self._limiter.hit, rules, key))

    async def peek(self, rules: Rules, key: str) -> None:
        if rules.enabled:
            self._refuse_unless(rules, key, await self._ask(self._limiter.peek, rules, key))

    async def count(self, rules: Rules, key: str) -> None:
        """Record an attempt without refusing this one (failed logins count toward the next)."""
        if rules.enabled:
            await self._ask(self._limiter.hit, rules, key)

    async def _ask(self, call: Callable[[Rules, str], Awaitable[Verdict]], rules: Rules, key: str) -> Verdict:
        """The limiter's verdict; if the limiter's backend is down, admit (fail open) and say so:
        scores stay exactly-once through the Store, and an outage must not become a lock-out."""
        try:
            return await call(rules, key)
        except Exception as error:
            self._metrics.limiter_errors.inc()
            log.warning("ratelimit.unavailable", limit=rules.name, error=str(error))
            return ALLOWED

    def _refuse_unless(self, rules: Rules, key: str, verdict: Verdict) -> None:
        if verdict.allowed:
            return
        self._metrics.rate_limited.labels(rules.name).inc()
        security_event(self._metrics, "rate_limited", limit=rules.name, subject=key)
        what = rules.name.replace("_", " ")
        raise RateLimited(what, verdict.reset_seconds, verdict.limit, verdict.remaining, rules.policy)
