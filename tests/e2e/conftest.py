"""Fixtures for the e2e ring: real `scoreboard serve` processes on free 127.0.0.1 ports."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from tests.e2e.server import Server, Servers


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Remember whether the test body failed, so the fixtures can show the servers' output."""
    report = yield
    if report.when == "call":
        item.stash[FAILED] = report.failed
    return report


FAILED = pytest.StashKey[bool]()


@pytest.fixture
def servers(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Servers]:
    """Start servers with `servers.start(env=..., workdir=...)`; all are stopped after the test, and
    their output is printed (shown by pytest) when the test failed."""
    pool = Servers(tmp_path)
    try:
        yield pool
    finally:
        pool.stop_all()
        if request.node.stash.get(FAILED, False):
            for server in pool.started:
                print(server.output)


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for a module's tests that only add their own users (saves a start per test)."""
    pool = Servers(tmp_path_factory.mktemp("shared"))
    try:
        yield pool.start("shared")
    finally:
        pool.stop_all()
