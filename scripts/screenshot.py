"""Writes screenshots of the live page (docs/screenshot.png and docs/screenshot-phone.png).

    .venv/bin/python scripts/screenshot.py [--out docs/screenshot.png]

It starts `scoreboard serve` on a free port with a throwaway database, lets a dozen players score
through the Python client (`scoreboard.client`), signs one of them in on the page, and photographs the
page with Debian's Chromium (`apt-get install chromium`) driven by Playwright — no browser download.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import expect, sync_playwright

from scoreboard.client import ScoreboardClient

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "correct horse battery staple"
PLAYERS = (
    "Ada",
    "Grace",
    "Alan",
    "Edsger",
    "Barbara",
    "Ken",
    "Margaret",
    "Linus",
    "Donald",
    "Radia",
    "Guido",
    "Hedy",
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def serve(workdir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SCOREBOARD_")}
    env |= {
        "SCOREBOARD_DATABASE_URL": f"sqlite:///{workdir / 'scoreboard.db'}",
        "SCOREBOARD_RATE_LIMIT_SCORE_UPDATES": "off",
        "SCOREBOARD_RATE_LIMIT_REGISTER": "off",
        "SCOREBOARD_RATE_LIMIT_ACTIONS": "off",
    }
    scoreboard = Path(sys.executable).parent / "scoreboard"
    command = [str(scoreboard), "serve", "--port", str(port)]
    server = subprocess.Popen(
        command, cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.05)
    server.kill()
    raise SystemExit("scoreboard serve did not become healthy within 15 s")


async def seed(base_url: str) -> tuple[str, str]:
    """A dozen players with a spread of scores; the credentials of a mid-table one to sign in."""
    rng = random.Random(8)
    async with httpx.AsyncClient(timeout=10) as http:
        for index, name in enumerate(PLAYERS):
            client = ScoreboardClient(base_url, http=http)
            username = f"{name.lower()}_{index}"
            await client.register(username, PASSWORD, display_name=name)
            await client.login(username, PASSWORD)
            for _ in range(rng.randint(3, 40) if index else 12):
                await client.complete_action((await client.request_action()).action_id)
    return "ada_0", PASSWORD


def photograph(base_url: str, login: tuple[str, str], out: Path) -> list[Path]:
    chromium = shutil.which("chromium")
    if not chromium:
        raise SystemExit("chromium is not installed (Debian: apt-get install chromium)")
    written = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True)
        shots = [(out, {"width": 1100, "height": 760}), (out.with_stem(f"{out.stem}-phone"), None)]
        for path, viewport in shots:
            options = {"viewport": viewport} if viewport else {**playwright.devices["Pixel 7"]}
            page = browser.new_context(color_scheme="dark", reduced_motion="reduce", **options).new_page()
            page.goto(f"{base_url}/")
            page.fill("#username", login[0])
            page.fill("#password", login[1])
            page.click("#login")
            expect(page.locator("#my-rank")).to_have_text(re.compile(r"^\d+$"))
            expect(page.locator("#connection")).to_have_attribute("data-state", "live")
            page.evaluate("() => { document.activeElement.blur(); window.scrollTo(0, 0); }")
            page.screenshot(path=str(path), full_page=viewport is not None)
            written.append(path)
        browser.close()
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshot.png", help="desktop PNG path")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="scoreboard-shot-") as scratch:
        port = free_port()
        server = serve(Path(scratch), port)
        try:
            base_url = f"http://127.0.0.1:{port}"
            login = asyncio.run(seed(base_url))
            for path in photograph(base_url, login, args.out):
                print(f"wrote {path}")
        finally:
            server.terminate()
            server.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
