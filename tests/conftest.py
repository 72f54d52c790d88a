"""Shared fixtures: an app on a private SQLite file, an HTTP client, and ready-made accounts."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from scoreboard.app import create_app
from scoreboard.config import Settings
from scoreboard.services.clock import Clock, utc_now
from tests.faults import PrivateRedis

PASSWORD = "correct horse battery staple"
TEST_SECRET = "test-secret-that-is-long-enough-for-hs256-0123456789"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Embedded settings on a private database, rate limits off unless a test turns them on."""
    return embedded_settings(tmp_path)


def embedded_settings(folder: Path) -> Settings:
    return Settings(
        database_url=f"sqlite:///{folder / 'scoreboard.db'}",
        jwt_secret=TEST_SECRET,
        rate_limit_score_updates="off",
        rate_limit_login="off",
        rate_limit_register="off",
        rate_limit_actions="off",
        log_format="json",
    )


@dataclass
class Api:
    """A client for one running app, with helpers for the common flows."""

    app: FastAPI
    http: httpx.AsyncClient

    async def register(self, username: str | None = None, **extra: Any) -> dict[str, Any]:
        username = username or f"u{uuid.uuid4().hex[:12]}"
        response = await self.http.post(
            "/api/auth/register", json={"username": username, "password": PASSWORD, **extra}
        )
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def login(self, username: str, password: str = PASSWORD) -> dict[str, Any]:
        response = await self.http.post("/api/auth/login", json={"username": username, "password": password})
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def user(self, username: str | None = None) -> User:
        account = await self.register(username)
        tokens = await self.login(account["username"])
        self.http.cookies.clear()  # tests choose bearer or cookie explicitly
        return User(account["user_id"], account["username"], tokens["access_token"], tokens)

    async def ticket(self, user: User, kind: str = "default") -> str:
        response = await self.http.post("/api/actions", json={"type": kind}, headers=user.auth)
        assert response.status_code == 201, response.text
        return str(response.json()["action_id"])

    async def update(self, user: User, action_id: str, user_id: str | None = None) -> httpx.Response:
        body = {"user_id": user_id or user.user_id, "action_id": action_id}
        return await self.http.post("/api/score/update", json=body, headers=user.auth)

    async def earn(self, user: User, times: int = 1) -> int:
        """Complete `times` actions for `user`; the final score."""
        score = 0
        for _ in range(times):
            response = await self.update(user, await self.ticket(user))
            assert response.status_code == 200, response.text
            score = int(response.json()["new_score"])
        return score


@dataclass
class User:
    user_id: str
    username: str
    token: str
    tokens: dict[str, Any]

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class ManualClock:
    """A clock that stands still until a test moves it; starts at the real time so that tokens
    issued before the first `advance` still verify against the wall clock."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
async def make_api() -> AsyncIterator[Callable[..., Any]]:
    """Start apps with given settings (running their lifespan); all are stopped at the end.

    `clock` replaces the app's clock (e.g. a ManualClock); every other keyword overrides a setting."""
    stack: list[Any] = []

    async def start(settings: Settings, clock: Clock | None = None, **overrides: Any) -> Api:
        app = create_app(replace(settings, **overrides), clock=clock or utc_now)
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
        client = httpx.AsyncClient(transport=transport, base_url="http://testserver")
        stack.append((lifespan, client))
        return Api(app, client)

    yield start
    for lifespan, client in reversed(stack):
        await client.aclose()
        await lifespan.__aexit__(None, None, None)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A redis-server of the test's own, to kill and restart (never the shared one); gone afterwards."""
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.kill()


@pytest.fixture
async def api(make_api: Callable[..., Any], settings: Settings) -> Api:
    result: Api = await make_api(settings)
    return result


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say plainly which backend tiers did not run, and why."""
    skipped = terminalreporter.stats.get("skipped", [])
    reasons = sorted({str(r.longrepr[2]) for r in skipped if "tier needs" in str(r.longrepr)})
    if reasons:
        terminalreporter.write_line("backend tiers skipped: " + "; ".join(reasons), yellow=True)
