"""Login back-off: free failures, then a wait that doubles up to a cap."""

from __future__ import annotations

from scoreboard.domain.backoff import Backoff


def test_the_free_failures_cost_nothing_then_the_wait_doubles() -> None:
    backoff = Backoff(free=3, max_seconds=900)

    assert [backoff.wait_after(n) for n in range(1, 9)] == [0, 0, 0, 1, 2, 4, 8, 16]


def test_the_wait_never_exceeds_the_cap_even_after_very_many_failures() -> None:
    backoff = Backoff(free=0, max_seconds=900)

    assert backoff.wait_after(11) == 900
    assert backoff.wait_after(10_000) == 900


def test_retry_after_counts_down_from_the_last_failure_in_whole_seconds() -> None:
    backoff = Backoff(free=0, max_seconds=900)

    assert backoff.retry_after(3, last_at=100.0, now=100.0) == 4
    assert backoff.retry_after(3, last_at=100.0, now=102.5) == 2
    assert backoff.retry_after(3, last_at=100.0, now=104.0) == 0
    assert backoff.retry_after(0, last_at=100.0, now=100.0) == 0


def test_a_zero_cap_turns_the_back_off_off() -> None:
    backoff = Backoff(free=0, max_seconds=0)

    assert not backoff.enabled
    assert backoff.wait_after(50) == 0
