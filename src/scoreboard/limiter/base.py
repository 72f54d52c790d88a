"""The RateLimiter: counts hits per key against `limits`-style rules ("10/second;300/minute")."""

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

    @property
    def policy(self) -> str:
        """The RateLimit-Policy header value: `10;w=1, 300;w=60`."""
        return ", ".join(f"{i.amount};w={i.get_expiry()}" for i in self.items)


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    limit: int = 0
    remaining: int = 0
    reset_seconds: int = 0


ALLOWED = Verdict(allowed=True)


class RateLimiter(Protocol):
    async def hit(self, rules: Rules, key: str) -> Verdict:
        """Count one hit of `key` against every rule; refused when any rule is exhausted. When refused,
        the verdict names the exhausted rule and how long until it admits again."""

    async def peek(self, rules: Rules, key: str) -> Verdict:
        """Whether one more hit would be admitted, without counting it."""

    async def reset(self, rules: Rules, key: str) -> None:
        """Forget `key`'s hits (e.g. failed logins after a success)."""

    async def close(self) -> None:
        """Release connections."""
