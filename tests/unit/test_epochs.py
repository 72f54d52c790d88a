"""Board epochs: a rebuilt board must never reuse one, or clients would take its snapshot as stale."""

from __future__ import annotations

import time

import pytest

from scoreboard.leaderboard import memory


def test_two_epochs_within_one_millisecond_still_differ_and_rise(monkeypatch: pytest.MonkeyPatch) -> None:
    frozen = time.time_ns()
    monkeypatch.setattr(memory.time, "time_ns", lambda: frozen)
    first, second, third = memory.new_epoch(), memory.new_epoch(), memory.new_epoch()
    assert first < second < third
