"""Debian's Chromium driven by Playwright (no browser download), and the page's flows as one-liners."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from tests.backends import require_program

PASSWORD = "correct horse battery staple"
LIVE_SECONDS = 10.0  # how long a page may take to (re)connect after the server or network returns


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium (the `chromium` program); skips, or fails under CI, when it is missing."""
    executable = require_program("chromium")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is a dev dependency")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def expect(locator: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def open_page(browser: Any, base_url: str, **context_options: Any) -> Any:
    """A page in its own context (own storage and network), live on the board."""
    page = browser.new_context(**context_options).new_page()
    page.goto(f"{base_url}/")
    wait_live(page)
    return page


def wait_live(page: Any, seconds: float = LIVE_SECONDS) -> None:
    expect(page.locator("#connection")).to_have_attribute("data-state", "live", timeout=seconds * 1000)


def register(page: Any) -> str:
    """Registers and logs in a new user through the page's form; their user id."""
    page.fill("#username", f"pw_{uuid.uuid4().hex[:12]}")
    page.fill("#password", PASSWORD)
    page.click("#register")
    expect(page.locator("#session")).to_be_visible()
    session = page.evaluate("() => sessionStorage.getItem('scoreboard.session')")
    return str(json.loads(session)["userId"])


def row(page: Any, user_id: str) -> Any:
    return page.locator(f'#board li[data-user="{user_id}"]')


def board_rows(page: Any) -> list[tuple[str, int]]:
    """The board as the page shows it: (user_id, score) from the top."""
    rows = page.eval_on_selector_all(
        "#board li", "els => els.map(li => [li.dataset.user, li.querySelector('.score').textContent])"
    )
    return [(user, int(score.replace(",", ""))) for user, score in rows]


class Api:
    """Players scoring through the HTTP API (beside the pages), with a bearer token each."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=10.0)

    def close(self) -> None:
        self.http.close()

    def player(self) -> tuple[str, dict[str, str]]:
        username = f"api_{uuid.uuid4().hex[:12]}"
        body = {"username": username, "password": PASSWORD}
        user_id = self.http.post("/api/auth/register", json=body).raise_for_status().json()["user_id"]
        token = self.http.post("/api/auth/login", json=body).raise_for_status().json()["access_token"]
        self.http.cookies.clear()
        return str(user_id), {"Authorization": f"Bearer {token}"}

    def earn(self, player: tuple[str, dict[str, str]], times: int = 1) -> int:
        user_id, auth = player
        score = 0
        for _ in range(times):
            ticket = self.http.post("/api/actions", json={"type": "default"}, headers=auth).raise_for_status()
            body = {"user_id": user_id, "action_id": ticket.json()["action_id"]}
            score = (
                self.http.post("/api/score/update", json=body, headers=auth)
                .raise_for_status()
                .json()["new_score"]
            )
        return int(score)

    def board(self) -> dict[str, Any]:
        return dict(self.http.get("/api/leaderboard").raise_for_status().json())
