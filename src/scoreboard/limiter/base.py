"""The RateLimiter: counts hits per key against `limits`-style rules ("10/second;300/minute"), and
keeps the failure streaks that login back-off grows from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from limits import RateLimitItem, parse_many


@dataclass(frozen=True, slots=True)
class Rules:
    """A named set of limits; an empty set (the setting `off`) never refuses."""

    name: str
    items: tuple[RateLimitItem, ...]

    @classmethod
    def parse(cls, name: str, spec: str) -> Rules:
        spec = spec.strip()
        if spec.lower() in {"off", "none", ""}:
            return cls(name, ())
        try:
            return cls(name, tuple(parse_many(spec)))
        except ValueError as error:
            raise ValueError(f"rate limit {name}: cannot parse {spec!r}: {error}") from None

    @property
    def enabled(self) -> bool:
        return bool(self.items)

    def policy_id(self, window: int) -> str:
        """The quota policy's identifier in the RateLimit fields, a structured-field String: the rule
        set and its window, `"score_updates-1s"`."""
        return sf_string(f"{self.name}-{window}s")

    @property
    def policy(self) -> str:
        """The RateLimit-Policy field (draft-ietf-httpapi-ratelimit-headers-10, a structured-field
        List): `"score_updates-1s";q=10;w=1, "score_updates-60s";q=300;w=60`."""
        return ", ".join(
            f"{self.policy_id(i.get_expiry())};q={i.amount};w={i.get_expiry()}" for i in self.items
        )


def sf_string(text: str) -> str:
    """`text` as an RFC 8941 String (names come from settings, e.g. an action type's)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True, slots=True)
class Verdict:
    """Admitted, or refused by the rule of `window` seconds that allows `limit` hits."""

    allowed: bool
    limit: int = 0
    remaining: int = 0
    reset_seconds: int = 0
    window: int = 0


ALLOWED = Verdict(allowed=True)


@dataclass(frozen=True, slots=True)
class Streak:
    """Consecutive failures of a key and when (epoch seconds) the last one happened."""

    failures: int = 0
    last_at: float = 0.0


NO_STREAK = Streak()


class RateLimiter(Protocol):
    async def hit(self, rules: Rules, key: str) -> Verdict:
        """Count one hit of `key` against every rule; refused when any rule is exhausted. When refused,
        the verdict names the exhausted rule and how long until it admits again."""

    async def peek(self, rules: Rules, key: str) -> Verdict:
        """Whether one more hit would be admitted, without counting it."""

    async def reset(self, rules: Rules, key: str) -> None:
        """Forget `key`'s hits (e.g. failed logins after a success)."""

    async def strike(self, key: str, now: float, forget_after: int) -> Streak:
        """Add one failure to `key`'s streak atomically (across instances for a shared adapter) and
        return the streak; it is forgotten `forget_after` seconds after its last failure."""

    async def streak(self, key: str, now: float) -> Streak:
        """`key`'s current streak (NO_STREAK when none)."""

    async def forgive(self, key: str) -> None:
        """End `key`'s streak."""

    async def close(self) -> None:
        """Release connections."""
