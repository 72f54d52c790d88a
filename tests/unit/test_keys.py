"""The generated HS256 secret: created once, private to its owner, reused afterwards."""

from __future__ import annotations

import stat
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from scoreboard.auth.keys import load_or_create_secret, symmetric_key


def test_secret_file_is_created_with_owner_only_permissions(tmp_path: Path) -> None:
    path = tmp_path / "jwt.secret"

    secret = load_or_create_secret(path)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text("utf-8") == secret
    assert len(secret) >= 32


def test_secret_file_is_reused_not_replaced(tmp_path: Path) -> None:
    path = tmp_path / "jwt.secret"
    first = load_or_create_secret(path)
    created = path.stat().st_mtime_ns

    assert load_or_create_secret(path) == first
    assert path.stat().st_mtime_ns == created


def test_existing_secret_is_read_without_surrounding_whitespace(tmp_path: Path) -> None:
    path = tmp_path / "jwt.secret"
    path.write_text("s" * 40 + "\n", "utf-8")

    assert load_or_create_secret(path) == "s" * 40


def test_short_existing_secret_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "jwt.secret"
    path.write_text("too-short", "utf-8")

    with pytest.raises(ValueError, match="shorter than 32 characters"):
        load_or_create_secret(path)


def test_symmetric_key_refuses_a_short_secret() -> None:
    with pytest.raises(ValueError, match="at least 32 characters"):
        symmetric_key("short")


def test_concurrent_first_starts_agree_on_one_complete_secret(tmp_path: Path) -> None:
    """Several workers starting at once: none may read the file before its secret is written."""
    starters = 8
    for attempt in range(25):
        path = tmp_path / f"jwt-{attempt}.secret"
        barrier = threading.Barrier(starters)

        def start(path: Path = path, barrier: threading.Barrier = barrier) -> str:
            barrier.wait()
            return load_or_create_secret(path)

        with ThreadPoolExecutor(starters) as pool:
            secrets = list(pool.map(lambda _: start(), range(starters)))

        assert len(set(secrets)) == 1
        assert path.read_text("utf-8") == secrets[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"jwt-{i}.secret" for i in range(25))
