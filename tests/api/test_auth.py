"""Accounts: POST /api/auth/register and POST /api/auth/login."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from scoreboard.config import Settings
from tests.api.support import CANONICAL_UUID, assert_problem, bearer, shared_loop
from tests.conftest import PASSWORD, Api


async def post_register(api: Api, **body: Any) -> httpx.Response:
    return await api.http.post("/api/auth/register", json=body)


# register -------------------------------------------------------------------------------------


async def test_register_creates_account_with_username_as_default_display_name(api: Api) -> None:
    response = await post_register(api, username="alice", password=PASSWORD)

    assert response.status_code == 201
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"user_id", "username", "display_name"}
    assert re.fullmatch(CANONICAL_UUID, body["user_id"])
    assert body["username"] == "alice"
    assert body["display_name"] == "alice"


async def test_register_keeps_the_given_display_name(api: Api) -> None:
    response = await post_register(api, username="bob", password=PASSWORD, display_name="Bob B.")

    assert response.status_code == 201
    assert response.json()["display_name"] == "Bob B."


async def test_register_accepts_the_boundaries_of_the_policy(api: Api) -> None:
    shortest = await post_register(api, username="a.b", password="x" * 10)
    longest = await post_register(api, username="A_b-" + "9" * 28, password="y" * 10)

    assert shortest.status_code == 201, shortest.text
    assert longest.status_code == 201, longest.text


@shared_loop
@pytest.mark.parametrize(
    ("body", "why"),
    [
        ({"username": "ab", "password": PASSWORD}, "username shorter than 3"),
        ({"username": "a" * 33, "password": PASSWORD}, "username longer than 32"),
        ({"username": "has space", "password": PASSWORD}, "space in username"),
        ({"username": "bang!", "password": PASSWORD}, "punctuation in username"),
        ({"username": "émile", "password": PASSWORD}, "non-ASCII letter in username"),
        ({"username": "alice\n", "password": PASSWORD}, "trailing newline in username"),
        ({"username": "alice", "password": "123456789"}, "password shorter than 10"),
        ({"username": "alice", "password": ""}, "empty password"),
        ({"username": "alice", "password": PASSWORD, "display_name": ""}, "empty display name"),
        ({"username": "alice", "password": PASSWORD, "display_name": "   "}, "blank display name"),
        ({"username": "alice", "password": PASSWORD, "display_name": "a\x00b"}, "control character"),
        ({"username": "alice", "password": PASSWORD, "display_name": "d" * 65}, "display name too long"),
        ({"username": "alice"}, "missing password"),
        ({"password": PASSWORD}, "missing username"),
        ({"username": "alice", "password": PASSWORD, "admin": True}, "unknown field"),
        ({"username": 12345, "password": PASSWORD}, "username not a string"),
    ],
)
async def test_register_refuses_a_policy_violation_with_400(
    shared_api: Api, body: dict[str, Any], why: str
) -> None:
    response = await shared_api.http.post("/api/auth/register", json=body)

    assert_problem(response, 400, "invalid_request")


async def test_register_refuses_invalid_utf8_with_400_not_500(api: Api) -> None:
    response = await api.http.post(
        "/api/auth/register",
        content=b'{"username": "\xff\xfe", "password": "correct horse battery"}',
        headers={"content-type": "application/json"},
    )

    assert_problem(response, 400, "invalid_request")


async def test_register_refuses_a_taken_username_with_409(api: Api) -> None:
    await api.register("alice")

    response = await post_register(api, username="alice", password=PASSWORD)

    assert_problem(response, 409, "username_taken")


async def test_register_refuses_a_username_differing_only_in_case(api: Api) -> None:
    await api.register("alice")

    response = await post_register(api, username="Alice", password=PASSWORD)

    assert_problem(response, 409, "username_taken")


# login ----------------------------------------------------------------------------------------


async def test_login_returns_bearer_pair_and_works_regardless_of_username_case(api: Api) -> None:
    account = await api.register("Carol")

    response = await api.http.post("/api/auth/login", json={"username": "carol", "password": PASSWORD})

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 900
    assert body["access_token"].count(".") == 2
    assert len(body["refresh_token"]) >= 32
    assert body["refresh_token"] != body["access_token"]
    api.http.cookies.clear()
    ticket = await api.http.post(
        "/api/actions", json={"type": "default"}, headers=bearer(body["access_token"])
    )
    assert ticket.status_code == 201
    me = await api.http.get(f"/api/users/{account['user_id']}/score")
    assert me.json()["display_name"] == "Carol"


def set_cookies(response: httpx.Response) -> dict[str, str]:
    """Each Set-Cookie header by cookie name."""
    return {h.split("=", 1)[0]: h for h in response.headers.get_list("set-cookie")}


async def test_login_sets_an_httponly_samesite_strict_cookie_not_secure_over_http(api: Api) -> None:
    account = await api.register()

    response = await api.http.post(
        "/api/auth/login", json={"username": account["username"], "password": PASSWORD}
    )

    cookie = set_cookies(response)["access_token"]
    attributes = [a.strip().lower() for a in cookie.split(";")]
    assert cookie.startswith(f"access_token={response.json()['access_token']};")
    assert "httponly" in attributes
    assert "samesite=strict" in attributes
    assert "secure" not in attributes
    assert response.headers["cache-control"] == "no-store"


async def test_login_cookie_is_secure_when_served_over_tls(api: Api) -> None:
    account = await api.register()
    transport = httpx.ASGITransport(app=api.app, client=("203.0.113.7", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as tls:
        response = await tls.post(
            "/api/auth/login", json={"username": account["username"], "password": PASSWORD}
        )

    attributes = [a.strip().lower() for a in set_cookies(response)["access_token"].split(";")]
    assert response.status_code == 200
    assert "secure" in attributes
    assert "httponly" in attributes


async def test_login_answers_unknown_user_and_wrong_password_identically(api: Api) -> None:
    account = await api.register()

    wrong_password = await api.http.post(
        "/api/auth/login", json={"username": account["username"], "password": "not the password"}
    )
    unknown_user = await api.http.post("/api/auth/login", json={"username": "nobody", "password": PASSWORD})

    assert_problem(wrong_password, 401, "invalid_credentials")
    assert_problem(unknown_user, 401, "invalid_credentials")
    assert wrong_password.json() == unknown_user.json()
    assert "set-cookie" not in wrong_password.headers


async def test_login_with_missing_field_is_400(api: Api) -> None:
    response = await api.http.post("/api/auth/login", json={"username": "alice"})

    assert_problem(response, 400, "invalid_request")


async def test_login_is_throttled_after_repeated_failures(
    make_api: Callable[..., Any], settings: Settings
) -> None:
    api: Api = await make_api(settings, rate_limit_login="3/minute")
    account = await api.register()
    wrong = {"username": account["username"], "password": "not the password"}

    failures = [await api.http.post("/api/auth/login", json=wrong) for _ in range(3)]
    throttled = await api.http.post("/api/auth/login", json=wrong)
    even_right = await api.http.post(
        "/api/auth/login", json={"username": account["username"], "password": PASSWORD}
    )

    for failure in failures:
        assert_problem(failure, 401, "invalid_credentials")
    assert_problem(throttled, 429, "rate_limited")
    assert 1 <= int(throttled.headers["retry-after"]) <= 60
    assert_problem(even_right, 429, "rate_limited")


async def test_login_successes_do_not_count_toward_the_throttle(
    make_api: Callable[..., Any], settings: Settings
) -> None:
    api: Api = await make_api(settings, rate_limit_login="2/minute")
    account = await api.register()

    for _ in range(3):
        await api.login(account["username"])
