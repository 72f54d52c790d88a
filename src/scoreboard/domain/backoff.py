"""Login back-off: how long a key (a username or an address) must wait after a streak of failures."""

from __future__ import annotations

import math
from dataclasses import dataclass

# A streak is forgotten an hour after its last failure, like the hourly attempt cap.
STREAK_MEMORY_SECONDS = 3600


@dataclass(frozen=True, slots=True)
class Backoff:
    """The first `free` failures in a row cost nothing; each one after doubles the wait, starting at
    one second and never above `max_seconds`. Off when `max_seconds` is 0."""

    free: int = 3
    max_seconds: int = 900

    @property
    def enabled(self) -> bool:
        return self.max_seconds > 0

    def wait_after(self, failures: int) -> float:
        """Seconds to wait after the `failures`-th failure in a row."""
        extra = failures - self.free
        if not self.enabled or extra <= 0:
            return 0.0
        # min() first on the exponent keeps 2**extra from growing without bound.
        return float(min(2 ** min(extra - 1, 62), self.max_seconds))

    def retry_after(self, failures: int, last_at: float, now: float) -> int:
        """Whole seconds until the next attempt is admitted; 0 when it is admitted now."""
        remaining = last_at + self.wait_after(failures) - now
        return math.ceil(remaining) if remaining > 0 else 0
