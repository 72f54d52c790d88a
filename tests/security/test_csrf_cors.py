"""Cookies, CSRF and CORS: the access cookie cannot be read by scripts nor sent cross-site, a write
authenticated by the cookie needs the CSRF token, and only configured origins get CORS."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from scoreboard.config import Settings, SettingsError
from tests.api.support import assert_problem
from tests.conftest import PASSWORD, Api
from tests.security.instances import client_at, login

GAME = "https://game.example"
EVIL = "https://evil.example"


def access_cookie(response: httpx.Response) -> list[str]:
    """The attributes of the access_token Set-Cookie, lowercased, value dropped."""
    for header in response.headers.get_list("set-cookie"):
        name, _, rest = header.partition("=")
        if name == "access_token":
            return [part.strip().lower() for part in rest.split(";")[1:]]
    raise AssertionError(f"no access_token cookie in {response.headers}")


# the cookie -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("scheme", "secure"), [("https", True), ("http", False)])
async def test_the_access_cookie_is_httponly_strict_and_secure_over_tls(
    api: Api, scheme: str, secure: bool
) -> None:
    account = await api.register()
    async with client_at(api, "198.51.100.1", scheme) as client:
        response = await login(client, account["username"])

    attributes = access_cookie(response)
    assert response.status_code == 200
    assert "httponly" in attributes
    assert "samesite=strict" in attributes
    assert "path=/" in attributes
    assert ("secure" in attributes) is secure


async def test_a_forwarded_proto_header_does_not_make_a_plain_request_secure(api: Api) -> None:
    """Anyone can send X-Forwarded-Proto; only the server (uvicorn's trusted proxies) may apply it."""
    account = await api.register()

    response = await api.http.post(
        "/api/auth/login",
        json={"username": account["username"], "password": PASSWORD},
        headers={"X-Forwarded-Proto": "https"},
    )

    assert response.status_code == 200
    assert "secure" not in access_cookie(response)


# CSRF -------------------------------------------------------------------------------------------


async def test_a_cookie_authenticated_write_without_the_csrf_header_is_403(api: Api) -> None:
    account = await api.register()
    async with client_at(api, "198.51.100.1") as browser:
        await login(browser, account["username"])
        ticket = await browser.post("/api/actions", json={"type": "default"})
        update = await browser.post(
            "/api/score/update", json={"user_id": account["user_id"], "action_id": str(uuid.uuid4())}
        )
        logout = await browser.post("/api/auth/logout")

    for refused in (ticket, update, logout):
        assert_problem(refused, 403, "csrf_failed")


async def test_a_forged_or_foreign_csrf_token_is_403(api: Api) -> None:
    victim, attacker = await api.register(), await api.register()
    attackers_token = (await api.login(attacker["username"]))["csrf_token"]
    api.http.cookies.clear()
    async with client_at(api, "198.51.100.1") as browser:
        await login(browser, victim["username"])
        guessed = await browser.post(
            "/api/actions", json={"type": "default"}, headers={"X-CSRF-Token": "guess"}
        )
        foreign = await browser.post(
            "/api/actions", json={"type": "default"}, headers={"X-CSRF-Token": attackers_token}
        )

    assert_problem(guessed, 403, "csrf_failed")
    assert_problem(foreign, 403, "csrf_failed")


async def test_a_cookie_authenticated_write_with_the_csrf_header_succeeds(api: Api) -> None:
    account = await api.register()
    async with client_at(api, "198.51.100.1") as browser:
        csrf = (await login(browser, account["username"])).json()["csrf_token"]
        assert browser.cookies["csrf_token"] == csrf  # what the page's script reads and echoes
        ticket = await browser.post("/api/actions", json={"type": "default"}, headers={"X-CSRF-Token": csrf})
        update = await browser.post(
            "/api/score/update",
            json={"user_id": account["user_id"], "action_id": ticket.json()["action_id"]},
            headers={"X-CSRF-Token": csrf},
        )
        read = await browser.get(f"/api/users/{account['user_id']}/score")  # reads need no token

    assert ticket.status_code == 201, ticket.text
    assert update.status_code == 200, update.text
    assert read.json()["score"] == 1


async def test_bearer_authenticated_writes_need_no_csrf_header(api: Api) -> None:
    alice = await api.user()

    ticket = await api.http.post("/api/actions", json={"type": "default"}, headers=alice.auth)
    update = await api.update(alice, ticket.json()["action_id"])

    assert ticket.status_code == 201, ticket.text
    assert update.status_code == 200, update.text


# CORS -------------------------------------------------------------------------------------------


def preflight(origin: str) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type, x-csrf-token",
    }


@pytest.mark.parametrize("path", ["/api/score/update", "/api/actions"])
async def test_cors_is_off_unless_origins_are_configured(api: Api, path: str) -> None:
    answered = await api.http.options(path, headers=preflight(GAME))
    read = await api.http.get("/api/leaderboard", headers={"Origin": GAME})

    assert "access-control-allow-origin" not in answered.headers
    assert "access-control-allow-origin" not in read.headers


@pytest.mark.parametrize("path", ["/api/score/update", "/api/actions"])
async def test_a_configured_origin_may_call_with_credentials_and_the_csrf_header(
    make_api: Callable[..., Any], settings: Settings, path: str
) -> None:
    api: Api = await make_api(settings, allowed_origins=(GAME,))

    answered = await api.http.options(path, headers=preflight(GAME))
    read = await api.http.get("/api/leaderboard", headers={"Origin": GAME})

    assert answered.status_code == 200
    assert answered.headers["access-control-allow-origin"] == GAME
    assert answered.headers["access-control-allow-credentials"] == "true"
    assert "x-csrf-token" in answered.headers["access-control-allow-headers"].lower()
    assert read.headers["access-control-allow-origin"] == GAME
    assert "ratelimit" in read.headers["access-control-expose-headers"].lower()


async def test_other_origins_get_no_cors_when_origins_are_configured(
    make_api: Callable[..., Any], settings: Settings
) -> None:
    api: Api = await make_api(settings, allowed_origins=(GAME,))

    answered = await api.http.options("/api/score/update", headers=preflight(EVIL))
    read = await api.http.get("/api/leaderboard", headers={"Origin": EVIL})

    assert answered.status_code == 400
    assert "access-control-allow-origin" not in answered.headers
    assert "access-control-allow-origin" not in read.headers


def test_a_wildcard_origin_is_refused_at_startup() -> None:
    with pytest.raises(SettingsError, match="SCOREBOARD_ALLOWED_ORIGINS"):
        Settings.from_env({"SCOREBOARD_ALLOWED_ORIGINS": "https://game.example, *"})
