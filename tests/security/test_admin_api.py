"""The admin API (OWASP API5 2023, broken function-level authorisation): only role `admin` may
list a user's actions, ban, unban and correct scores; every act is audited. A ban takes the user's
score off the board (published, and still so after a cache rebuild), refuses their tokens, their
refresh tokens and their logins, and keeps their name taken."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from scoreboard.api.deps import Container
from scoreboard.config import Settings
from scoreboard.domain.model import Role
from scoreboard.realtime.hub import Mailbox
from tests.api.support import assert_problem, bearer, forge, stored_score
from tests.backends import REDIS_URL, require
from tests.conftest import PASSWORD, Api, User
from tests.faults import PrivateRedis
from tests.isolation import delete_redis_prefix, unique
from tests.security.support import user_with_roles


@pytest.fixture(params=["memory", "redis"])
async def board_api(
    request: pytest.FixtureRequest, make_api: Callable[..., Any], settings: Settings
) -> AsyncIterator[Api]:
    """An app whose leaderboard, revocations and broker are in memory, or on Redis."""
    if request.param == "memory":
        yield await make_api(settings)
        return
    require("redis")
    prefix = unique()
    try:
        yield await make_api(settings, redis_url=REDIS_URL, redis_prefix=prefix)
    finally:
        await delete_redis_prefix(prefix)


async def admin_of(api: Api) -> User:
    return await user_with_roles(api, Role.ADMIN)


async def act(api: Api, admin: User, user_id: str, what: str, **body: Any) -> httpx.Response:
    return await api.http.post(
        f"/api/admin/users/{user_id}/{what}", json={"reason": "test", **body}, headers=admin.auth
    )


async def board_ids(api: Api) -> list[str]:
    response = await api.http.get("/api/leaderboard")
    return [e["user_id"] for e in response.json()["entries"]]


# who may call ------------------------------------------------------------------------------------

ADMIN_CALLS = [
    ("GET", "/api/admin/users/{user}/actions", None),
    ("GET", "/api/admin/audit", None),
    ("POST", "/api/admin/users/{user}/ban", {"reason": "x"}),
    ("POST", "/api/admin/users/{user}/unban", {"reason": "x"}),
    ("POST", "/api/admin/users/{user}/score", {"score": 99, "reason": "x"}),
]


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_CALLS)
async def test_admin_calls_are_401_anonymous_and_403_for_users_and_services(
    api: Api, settings: Settings, method: str, path: str, body: dict[str, Any] | None
) -> None:
    alice = await api.user()
    await api.earn(alice)
    server = await user_with_roles(api, Role.SERVICE)
    url = path.format(user=alice.user_id)

    anonymous = await api.http.request(method, url, json=body)
    as_user = await api.http.request(method, url, json=body, headers=alice.auth)
    as_service = await api.http.request(method, url, json=body, headers=server.auth)

    assert_problem(anonymous, 401, "unauthenticated")
    assert_problem(as_user, 403, "forbidden")
    assert_problem(as_service, 403, "forbidden")
    assert stored_score(settings, alice.user_id) == 1
    assert await board_ids(api) == [alice.user_id]


async def test_a_forged_admin_role_needs_the_signing_key(api: Api) -> None:
    alice = await api.user()
    forged = forge(alice.user_id, secret="not-the-key-" * 4, roles=["admin"])

    response = await api.http.get("/api/admin/audit", headers=bearer(forged))

    assert_problem(response, 401, "unauthenticated")


# ban ---------------------------------------------------------------------------------------------


async def test_ban_takes_the_score_off_the_board_and_publishes_the_change(board_api: Api) -> None:
    api = board_api
    cheat, honest, admin = await api.user(), await api.user(), await admin_of(api)
    await api.earn(cheat, 3)
    await api.earn(honest, 1)
    before = (await api.http.get("/api/leaderboard")).json()
    hub = api.app.state.hub
    mailbox = Mailbox(hub, "test")
    hub.subscribe(mailbox)
    await mailbox.next(idle_seconds=1)  # the snapshot

    response = await act(api, admin, cheat.user_id, "ban", reason="aimbot")

    assert response.status_code == 200, response.text
    frame = await mailbox.next(idle_seconds=2)
    assert frame is not None
    update = json.loads(frame.text)
    assert update["type"] == "update"
    assert (update["epoch"], update["seq"]) == (before["epoch"], before["seq"] + 1)
    assert [e["user_id"] for e in update["top"]] == [honest.user_id]
    assert await board_ids(api) == [honest.user_id]
    assert_problem(await api.http.get(f"/api/users/{cheat.user_id}/score"), 404, "not_found")
    assert (await api.http.get(f"/api/users/{honest.user_id}/score")).json()["rank"] == 1


async def test_a_ban_holds_after_the_cache_is_rebuilt(board_api: Api) -> None:
    api = board_api
    cheat, honest, admin = await api.user(), await api.user(), await admin_of(api)
    await api.earn(cheat, 2)
    await api.earn(honest, 1)
    await act(api, admin, cheat.user_id, "ban")
    container: Container = api.app.state.container

    rebuilt = await container.keeper.rebuild()

    assert [e.user_id for e in rebuilt.entries] == [honest.user_id]
    assert await board_ids(api) == [honest.user_id]


async def test_banned_users_tokens_refresh_tokens_and_login_stop_working(board_api: Api) -> None:
    api = board_api
    cheat, admin = await api.user(), await admin_of(api)
    action_id = await api.ticket(cheat)
    await act(api, admin, cheat.user_id, "ban")

    update = await api.update(cheat, action_id)
    ticket = await api.http.post("/api/actions", json={"type": "default"}, headers=cheat.auth)
    refresh = await api.http.post("/api/auth/refresh", json={"refresh_token": cheat.tokens["refresh_token"]})
    login = await api.http.post("/api/auth/login", json={"username": cheat.username, "password": PASSWORD})
    wrong = await api.http.post("/api/auth/login", json={"username": cheat.username, "password": "x" * 12})
    again = await api.http.post(
        "/api/auth/register", json={"username": cheat.username.upper(), "password": PASSWORD}
    )

    assert_problem(update, 401, "unauthenticated")
    assert_problem(ticket, 401, "unauthenticated")
    assert_problem(refresh, 401, "invalid_refresh_token")
    assert_problem(login, 403, "account_banned")
    assert_problem(wrong, 401, "invalid_credentials")  # nothing told to someone without the password
    assert_problem(again, 409, "username_taken")


async def test_a_service_cannot_redeem_for_a_banned_user(api: Api, settings: Settings) -> None:
    cheat, admin = await api.user(), await admin_of(api)
    server = await user_with_roles(api, Role.SERVICE)
    action_id = await api.ticket(cheat)
    await act(api, admin, cheat.user_id, "ban")

    response = await api.update(server, action_id, user_id=cheat.user_id)

    assert_problem(response, 403, "forbidden")
    assert stored_score(settings, cheat.user_id) == 0


async def test_a_ban_refuses_the_users_tokens_on_every_instance(
    make_api: Callable[..., Any], settings: Settings
) -> None:
    require("redis")
    prefix = unique()
    try:
        first: Api = await make_api(settings, redis_url=REDIS_URL, redis_prefix=prefix)
        second: Api = await make_api(settings, redis_url=REDIS_URL, redis_prefix=prefix)
        cheat, admin = await first.user(), await admin_of(first)
        assert (
            await second.http.post("/api/actions", json={"type": "default"}, headers=cheat.auth)
        ).status_code == 201

        await act(first, admin, cheat.user_id, "ban")

        refused = await second.http.post("/api/actions", json={"type": "default"}, headers=cheat.auth)
        assert_problem(refused, 401, "unauthenticated")
    finally:
        await delete_redis_prefix(prefix)


async def test_a_ban_whose_tokens_cannot_be_revoked_yet_is_503_and_finished_by_repeating_it(
    make_api: Callable[..., Any], settings: Settings, private_redis: PrivateRedis
) -> None:
    redis = private_redis
    api: Api = await make_api(settings, redis_url=redis.url)
    cheat, admin = await api.user(), await admin_of(api)
    await api.earn(cheat, 2)
    redis.kill()

    first = await act(api, admin, cheat.user_id, "ban")
    board_meanwhile = await board_ids(api)  # from the Store while the cache is away
    redis.start()  # back, empty
    again = await act(api, admin, cheat.user_id, "ban")
    refused = await api.http.post("/api/actions", json={"type": "default"}, headers=cheat.auth)

    body = assert_problem(first, 503, "tokens_not_revoked")
    assert "repeat the ban" in body["detail"]
    assert first.headers["retry-after"] == "2"
    assert board_meanwhile == []
    assert again.status_code == 200, again.text
    assert again.json()["before"] == {"score": 2, "banned": True}
    assert_problem(refused, 401, "unauthenticated")


async def test_unban_returns_the_stored_score_and_lets_the_user_log_in(board_api: Api) -> None:
    api = board_api
    cheat, admin = await api.user(), await admin_of(api)
    await api.earn(cheat, 2)
    await act(api, admin, cheat.user_id, "ban")

    response = await act(api, admin, cheat.user_id, "unban", reason="appeal upheld")

    assert response.json()["after"] == {"score": 2, "banned": False}
    assert await board_ids(api) == [cheat.user_id]
    login = await api.http.post("/api/auth/login", json={"username": cheat.username, "password": PASSWORD})
    assert login.status_code == 200, login.text


# score correction ---------------------------------------------------------------------------------


async def test_correction_updates_the_board_and_counts_as_reached_at_the_correction(
    board_api: Api, settings: Settings
) -> None:
    api = board_api
    alice, bob, admin = await api.user(), await api.user(), await admin_of(api)
    await api.earn(alice, 5)
    await api.earn(bob, 2)

    response = await act(api, admin, alice.user_id, "score", score=2, reason="duplicated rewards")

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["before"], body["after"]) == ({"score": 5, "banned": False}, {"score": 2, "banned": False})
    assert stored_score(settings, alice.user_id) == 2
    # Both have 2; bob reached it before the correction, so bob ranks first.
    assert await board_ids(api) == [bob.user_id, alice.user_id]
    assert (await api.http.get(f"/api/users/{alice.user_id}/score")).json() == {
        "user_id": alice.user_id,
        "display_name": alice.username,
        "score": 2,
        "rank": 2,
    }


@pytest.mark.parametrize(
    "body",
    [
        {"score": -1, "reason": "x"},
        {"score": 2**63, "reason": "x"},
        {"score": 1.5, "reason": "x"},
        {"score": 1},
        {"score": 1, "reason": ""},
        {"score": 1, "reason": "x", "extra": True},
    ],
)
async def test_bad_correction_bodies_are_400_and_change_nothing(
    api: Api, settings: Settings, body: dict[str, Any]
) -> None:
    alice, admin = await api.user(), await admin_of(api)
    await api.earn(alice)

    response = await api.http.post(f"/api/admin/users/{alice.user_id}/score", json=body, headers=admin.auth)

    assert_problem(response, 400, "invalid_request")
    assert stored_score(settings, alice.user_id) == 1
    assert (await api.http.get("/api/admin/audit", headers=admin.auth)).json()["entries"] == []


async def test_acts_on_unknown_or_malformed_users_are_404_and_400(api: Api) -> None:
    admin = await admin_of(api)

    unknown = await act(api, admin, str(uuid.uuid4()), "ban")
    malformed = await act(api, admin, str(uuid.uuid4()).upper(), "ban")
    listing = await api.http.get(f"/api/admin/users/{uuid.uuid4()}/actions", headers=admin.auth)

    assert_problem(unknown, 404, "not_found")
    assert_problem(malformed, 400, "invalid_request")
    assert_problem(listing, 404, "not_found")


# audit and listing --------------------------------------------------------------------------------


async def test_every_admin_act_is_audited_newest_first_and_logged(api: Api) -> None:
    alice, admin = await api.user(), await admin_of(api)
    await api.earn(alice, 3)

    with capture_logs() as logs:
        await act(api, admin, alice.user_id, "ban", reason="bot")
        await act(api, admin, alice.user_id, "unban", reason="appeal")
        await act(api, admin, alice.user_id, "score", score=1, reason="refund")
    response = await api.http.get("/api/admin/audit?limit=2", headers=admin.auth)

    entries = response.json()["entries"]
    assert [(e["action"], e["reason"]) for e in entries] == [
        ("score_correction", "refund"),
        ("unban", "appeal"),
    ]
    assert entries[0]["actor_id"] == admin.user_id
    assert entries[0]["target_user_id"] == alice.user_id
    assert (entries[0]["before"], entries[0]["after"]) == (
        {"score": 3, "banned": False},
        {"score": 1, "banned": False},
    )
    assert entries[0]["audit_id"] > entries[1]["audit_id"]
    assert entries[0]["at"] >= entries[1]["at"]
    acted = [e for e in logs if e["event"] == "admin.acted"]
    assert [(e["action"], e["actor_id"], e["target_id"]) for e in acted] == [
        ("ban", admin.user_id, alice.user_id),
        ("unban", admin.user_id, alice.user_id),
        ("score_correction", admin.user_id, alice.user_id),
    ]
    security = [
        (e["event"], e.get("user_id") or e.get("target"))
        for e in logs
        if e.get("logger") == "scoreboard.security"
    ]
    assert security == [
        ("security.banned", alice.user_id),
        ("security.unbanned", alice.user_id),
        ("security.admin_action", alice.user_id),
    ]


@pytest.mark.parametrize("limit", ["0", "501", "x"])
async def test_out_of_range_limits_are_400(api: Api, limit: str) -> None:
    alice, admin = await api.user(), await admin_of(api)

    for url in ("/api/admin/audit", f"/api/admin/users/{alice.user_id}/actions"):
        response = await api.http.get(f"{url}?limit={limit}", headers=admin.auth)
        assert_problem(response, 400, "invalid_request")


async def test_recent_actions_lists_tickets_newest_first_with_redemption(api: Api) -> None:
    alice, admin = await api.user(), await admin_of(api)
    redeemed = await api.ticket(alice)
    assert (await api.update(alice, redeemed)).status_code == 200
    pending = await api.ticket(alice)

    response = await api.http.get(f"/api/admin/users/{alice.user_id}/actions", headers=admin.auth)
    limited = await api.http.get(f"/api/admin/users/{alice.user_id}/actions?limit=1", headers=admin.auth)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["user_id"] == alice.user_id
    assert [a["action_id"] for a in body["actions"]] == [pending, redeemed]
    assert body["actions"][0]["redeemed_at"] is None
    assert body["actions"][1]["redeemed_at"] >= body["actions"][1]["issued_at"]
    assert {a["type"] for a in body["actions"]} == {"default"}
    assert {a["points"] for a in body["actions"]} == {1}
    assert [a["action_id"] for a in limited.json()["actions"]] == [pending]


async def test_cookie_authenticated_admin_act_needs_the_csrf_header(api: Api, settings: Settings) -> None:
    alice, admin = await api.user(), await admin_of(api)
    await api.earn(alice)
    api.http.cookies.set("access_token", admin.token)

    refused = await api.http.post(f"/api/admin/users/{alice.user_id}/ban", json={"reason": "x"})
    api.http.cookies.clear()

    assert_problem(refused, 403, "csrf_failed")
    assert await board_ids(api) == [alice.user_id]


async def test_the_admin_api_is_described_in_openapi(api: Api) -> None:
    paths = (await api.http.get("/openapi.json")).json()["paths"]

    for method, path, body in ADMIN_CALLS:
        operation = paths[path.replace("{user}", "{user_id}")][method.lower()]
        assert {"200", "401", "403"} <= set(operation["responses"]), path
        assert ("requestBody" in operation) == (body is not None), path
