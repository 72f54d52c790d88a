"""Which real backend servers a test may use, and what happens when one is missing.

Outside CI a missing server skips its tier with a clear reason (collected at the end of the run).
With SCOREBOARD_REQUIRE_ALL_BACKENDS=1 (set by .ci/run) a missing server FAILS the test instead:
CI must never pass by skipping a tier.
"""

from __future__ import annotations

import os
import shutil
import socket
from functools import cache
from typing import NoReturn

import pytest

POSTGRES_URL = os.environ.get("SCOREBOARD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("SCOREBOARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
AMQP_URL = os.environ.get("SCOREBOARD_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")

_ADDRESSES = {
    "postgres": ("127.0.0.1", 5432),
    "redis": ("127.0.0.1", 6379),
    "rabbitmq": ("127.0.0.1", 5672),
}


def all_required() -> bool:
    return os.environ.get("SCOREBOARD_REQUIRE_ALL_BACKENDS", "") not in {"", "0", "false"}


@cache
def reachable(name: str) -> bool:
    host, port = _ADDRESSES[name]
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def require(name: str) -> None:
    """Skip (or, under CI, fail) unless the `name` server answers on its loopback port."""
    if reachable(name):
        return
    host, port = _ADDRESSES[name]
    unavailable(f"{name} tier needs a server on {host}:{port}, none answered")


def unavailable(reason: str) -> NoReturn:
    """Skip with `reason`; under CI (SCOREBOARD_REQUIRE_ALL_BACKENDS=1) fail instead."""
    if all_required():
        pytest.fail(f"{reason} (SCOREBOARD_REQUIRE_ALL_BACKENDS=1: tiers may not be skipped)")
    pytest.skip(reason)


def require_program(name: str) -> str:
    """The path of the `name` program (node, chromium); skip (or, under CI, fail) when it is missing."""
    path = shutil.which(name)
    if path:
        return path
    reason = f"{name} is not installed (Debian package: .ci/run installs it)"
    if all_required():
        pytest.fail(f"{reason} (SCOREBOARD_REQUIRE_ALL_BACKENDS=1: tiers may not be skipped)")
    pytest.skip(reason)
