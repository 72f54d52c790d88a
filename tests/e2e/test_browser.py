"""The page at `/` in a real browser (Debian's Chromium through Playwright) against real servers:
live updates across pages, reconnection after a server restart and after the network returns."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.backends import require_program
from tests.e2e.browser import Api, board_rows, chromium, expect, open_page, register, row, wait_live
from tests.e2e.server import Server, Servers

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def api(shared_server: Server) -> Iterator[Api]:
    client = Api(shared_server.base_url)
    yield client
    client.close()


def expect_board(page: Any, api: Api) -> None:
    """The page shows exactly the server's board (bounded wait for the last update to land)."""
    board = api.board()
    wanted = [(entry["user_id"], entry["score"]) for entry in board["entries"]]
    expect(page.locator("#board")).to_have_attribute("data-seq", str(board["seq"]))
    assert board_rows(page) == wanted


def test_an_action_completed_in_one_page_shows_in_the_other_within_a_second(
    browser: Any, shared_server: Server, api: Api
) -> None:
    watcher = open_page(browser, shared_server.base_url)
    player = open_page(browser, shared_server.base_url)
    user_id = register(player)
    leader = api.board()["entries"][:1]
    for _ in range(leader[0]["score"] if leader else 0):  # then the next point takes the lead
        player.click("#complete")
        expect(player.locator("#complete")).to_be_enabled()
    score = int(player.locator("#my-score").text_content() or "0") + 1
    player.click("#complete")
    expect(row(watcher, user_id).locator(".score")).to_have_text(str(score), timeout=1000)
    expect(row(watcher, user_id).locator(".rank")).to_have_text("1")
    expect(row(watcher, user_id)).to_have_attribute("data-move", re.compile("^(new|up)$"))  # the arrow
    expect(watcher.locator("#announcer")).to_contain_text("takes the lead")
    expect(row(player, user_id)).to_have_class("me")
    expect(player.locator("#my-rank")).to_have_text("1")


def test_a_page_left_offline_catches_up_when_the_network_returns(
    browser: Any, shared_server: Server, api: Api
) -> None:
    page = open_page(browser, shared_server.base_url)
    page.context.set_offline(True)
    expect(page.locator("#connection")).to_have_attribute("data-state", "offline")
    player = api.player()
    api.earn(player, api.board()["entries"][0]["score"] + 1 if api.board()["entries"] else 1)
    api.earn(player, 2)
    page.context.set_offline(False)
    wait_live(page)
    expect_board(page, api)
    expect(row(page, player[0]).locator(".rank")).to_have_text("1")


def test_own_score_and_rank_show_outside_the_top_ten(browser: Any, shared_server: Server, api: Api) -> None:
    page = open_page(browser, shared_server.base_url)
    user_id = register(page)
    for _ in range(10):
        api.earn(api.player(), 1)
    page.click("#complete")
    expect(page.locator("#my-score")).to_have_text("1")
    rank = api.http.get(f"/api/users/{user_id}/score").json()["rank"]
    assert rank > 10
    expect(page.locator("#my-rank")).to_have_text(str(rank))
    expect(row(page, user_id)).to_have_count(0)
    expect(page.locator("#you")).to_be_visible()


def test_on_a_phone_the_board_and_the_play_panel_fit_the_screen(browser: Any, shared_server: Server) -> None:
    page = open_page(browser, shared_server.base_url, viewport={"width": 390, "height": 844}, is_mobile=True)
    width = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"horizontal scroll: content {width[0]} px on a {width[1]} px screen"
    expect(page.locator("#board li").first).to_be_visible()
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")  # the skip link
    page.keyboard.press("Tab")
    expect(page.locator("#username")).to_be_focused()


# The WCAG relative-luminance contrast of each visible text element against the first opaque
# background behind it (the page has no background images or translucent text).
CONTRASTS = """() => {
  const rgb = (c) => c.match(/[\\d.]+/g).map(Number);
  const lum = ([r, g, b]) => [r, g, b].map((v) => {
    v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
  }).reduce((sum, v, i) => sum + v * [0.2126, 0.7152, 0.0722][i], 0);
  const background = (el) => {
    for (; el; el = el.parentElement) {
      const c = getComputedStyle(el).backgroundColor;
      if (rgb(c)[3] !== 0) return c;
    }
    return "rgb(255, 255, 255)";
  };
  const texts = [...document.querySelectorAll("h1, h2, p, li span, label, button, a, strong, code")]
    .filter((el) => el.offsetParent !== null && el.textContent.trim() && !el.closest(".visually-hidden"));
  return texts.map((el) => {
    const [a, b] = [lum(rgb(getComputedStyle(el).color)), lum(rgb(background(el)))];
    return [el.id || el.className || el.tagName, (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05)];
  });
}"""


def test_every_text_on_the_page_meets_wcag_aa_contrast(browser: Any, shared_server: Server) -> None:
    page = open_page(browser, shared_server.base_url)
    register(page)
    contrasts = page.evaluate(CONTRASTS)
    assert len(contrasts) > 20
    low = [(name, round(ratio, 2)) for name, ratio in contrasts if ratio < 4.5]
    assert not low, f"below 4.5:1: {low}"


def test_after_a_server_restart_both_pages_reconnect_and_show_the_board(
    browser: Any, servers: Servers
) -> None:
    server = servers.start("restarted")
    api = Api(server.base_url)
    pages = [open_page(browser, server.base_url) for _ in range(2)]
    try:
        before = api.board()
        api.earn(api.player(), 2)
        server.restart()
        for page in pages:
            wait_live(page)
        api.earn(api.player(), 3)
        after = api.board()
        assert after["epoch"] != before["epoch"]
        for page in pages:
            expect_board(page, api)
            expect(page.locator("#board-meta")).to_contain_text(f"epoch {after['epoch']}")
    finally:
        for page in pages:
            page.context.close()  # before the server stops, so its shutdown has no clients to wait for
        api.close()


def test_the_screenshot_script_photographs_the_page_signed_in(tmp_path: Path) -> None:
    require_program("chromium")
    out = tmp_path / "shot.png"
    script = Path(__file__).resolve().parents[2] / "scripts" / "screenshot.py"
    done = subprocess.run(
        [sys.executable, str(script), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for path in (out, tmp_path / "shot-phone.png"):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
        assert path.stat().st_size > 10_000, path
