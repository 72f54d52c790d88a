"""Rate limits under attack: every configured limit is enforced (and `off` turns it off), refusals
carry Retry-After and the RateLimit fields of draft-ietf-httpapi-ratelimit-headers-10, limits hold
per user and per address, and across instances through Redis."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

import httpx
import pytest

from scoreboard.config import Settings, SettingsError
from scoreboard.services.limits import LimitSet
from tests.api.support import assert_problem
from tests.conftest import PASSWORD, Api, User
from tests.security.instances import client_at, two_instances

# A structured-field List of quota policies: "name";q=N;w=N, ...
POLICY = re.compile(r'^"[a-z_]+-\d+s";q=\d+;w=\d+(, "[a-z_]+-\d+s";q=\d+;w=\d+)*$')
CURRENT = re.compile(r'^"(?P<name>[a-z_]+-\d+s)";r=(?P<r>\d+);t=(?P<t>\d+)$')


@dataclass
class Session:
    """An app and, made on first need, the one user whose calls are limited."""

    api: Api
    _user: User | None = None

    async def user(self) -> User:
        if self._user is None:
            self._user = await self.api.user()
        return self._user


Attempt = Callable[[Session], Awaitable[httpx.Response]]


async def register(session: Session) -> httpx.Response:
    body = {"username": f"u{uuid.uuid4().hex[:12]}", "password": PASSWORD}
    return await session.api.http.post("/api/auth/register", json=body)


async def failed_login(session: Session) -> httpx.Response:
    body = {"username": "mallory", "password": "wrong-guess"}
    return await session.api.http.post("/api/auth/login", json=body)


async def ticket(session: Session) -> httpx.Response:
    user = await session.user()
    return await session.api.http.post("/api/actions", json={"type": "default"}, headers=user.auth)


async def update(session: Session) -> httpx.Response:
    user = await session.user()
    return await session.api.update(user, await session.api.ticket(user))


LIMITS: dict[str, tuple[str, Attempt, int]] = {
    "rate_limit_register": ("register", register, 201),
    "rate_limit_login": ("login", failed_login, 401),
    "rate_limit_actions": ("actions", ticket, 201),
    "rate_limit_score_updates": ("score_updates", update, 200),
}


def assert_rate_limit_fields(response: httpx.Response, policy: str) -> re.Match[str]:
    """A 429 with Retry-After, a RateLimit-Policy list naming `policy`, and a RateLimit item for it
    whose reset `t` is the same moment as Retry-After."""
    assert_problem(response, 429, "rate_limited")
    retry_after = int(response.headers["retry-after"])
    assert retry_after >= 1
    assert POLICY.match(response.headers["ratelimit-policy"]), response.headers["ratelimit-policy"]
    current = CURRENT.match(response.headers["ratelimit"])
    assert current, response.headers["ratelimit"]
    assert current["name"].startswith(policy + "-")
    assert f'"{current["name"]}";' in response.headers["ratelimit-policy"]
    assert int(current["r"]) == 0
    assert int(current["t"]) == retry_after
    return current


@pytest.mark.parametrize("setting", list(LIMITS))
async def test_each_configured_limit_refuses_the_call_past_it(
    make_api: Callable[..., Any], settings: Settings, setting: str
) -> None:
    policy, attempt, success = LIMITS[setting]
    session = Session(await make_api(settings, **{setting: "2/minute"}))

    admitted = [await attempt(session) for _ in range(2)]
    refused = await attempt(session)

    assert [r.status_code for r in admitted] == [success, success], admitted[-1].text
    current = assert_rate_limit_fields(refused, policy)
    assert current["name"] == f"{policy}-60s"
    assert refused.headers["ratelimit-policy"] == f'"{policy}-60s";q=2;w=60'


@pytest.mark.parametrize("setting", list(LIMITS))
async def test_off_turns_a_limit_off(make_api: Callable[..., Any], settings: Settings, setting: str) -> None:
    _, attempt, success = LIMITS[setting]
    session = Session(await make_api(settings, **{setting: "off"}, rate_limit_per_address="1/minute"))

    answers = [await attempt(session) for _ in range(6)]

    assert [r.status_code for r in answers] == [success] * 6


async def test_the_tightest_window_is_the_one_reported(
    make_api: Callable[..., Any], settings: Settings
) -> None:
    session = Session(await make_api(settings, rate_limit_score_updates="2/second;100/minute"))

    answers = [await update(session) for _ in range(3)]

    current = assert_rate_limit_fields(answers[-1], "score_updates")
    assert current["name"] == "score_updates-1s"
    assert answers[-1].headers["ratelimit-policy"] == (
        '"score_updates-1s";q=2;w=1, "score_updates-60s";q=100;w=60'
    )


# per address ------------------------------------------------------------------------------------


async def test_many_accounts_from_one_address_share_its_budget(
    make_api: Callable[..., Any], settings: Settings
) -> None:
    api: Api = await make_api(
        settings, rate_limit_score_updates="100/minute", rate_limit_per_address="3/minute"
    )
    sybils = [await api.user() for _ in range(4)]
    tickets = [await api.ticket(user) for user in sybils]

    answers = [await api.update(user, action) for user, action in zip(sybils, tickets, strict=True)]
    async with client_at(api, "198.51.100.9") as elsewhere:
        other_address = await elsewhere.post(
            "/api/score/update",
            json={"user_id": sybils[-1].user_id, "action_id": tickets[-1]},
            headers=sybils[-1].auth,
        )

    assert [r.status_code for r in answers[:3]] == [200, 200, 200]
    assert_rate_limit_fields(answers[3], "address")
    assert other_address.status_code == 200, other_address.text


async def test_tickets_and_updates_spend_one_address_budget(
    make_api: Callable[..., Any], settings: Settings
) -> None:
    api: Api = await make_api(
        settings,
        rate_limit_actions="100/minute",
        rate_limit_score_updates="100/minute",
        rate_limit_per_address="3/minute",
    )
    alice = await api.user()
    action_id = await api.ticket(alice)
    await api.ticket(alice)

    admitted = await api.update(alice, action_id)
    refused = await api.http.post("/api/actions", json={"type": "default"}, headers=alice.auth)

    assert admitted.status_code == 200
    assert_rate_limit_fields(refused, "address")


# across instances -------------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.redis
async def test_a_users_limit_holds_across_instances_sharing_redis(
    make_api: Callable[..., Any], settings: Settings
) -> None:
    async with two_instances(make_api, settings, rate_limit_score_updates="3/minute") as (first, second):
        alice = await first.user()
        answers = []
        for i in range(5):
            api = first if i % 2 else second
            answers.append(await api.update(alice, await api.ticket(alice)))

    assert [r.status_code for r in answers[:3]] == [200, 200, 200]
    for refused in answers[3:]:
        assert_rate_limit_fields(refused, "score_updates")


@pytest.mark.postgres
@pytest.mark.redis
async def test_an_address_budget_holds_across_instances_sharing_redis(
    make_api: Callable[..., Any], settings: Settings
) -> None:
    async with two_instances(
        make_api, settings, rate_limit_score_updates="100/minute", rate_limit_per_address="2/minute"
    ) as (first, second):
        alice, bob = await first.user(), await second.user()
        answers = [
            await first.update(alice, await first.ticket(alice)),
            await second.update(bob, await second.ticket(bob)),
            await first.update(bob, await first.ticket(bob)),
        ]

    assert [r.status_code for r in answers[:2]] == [200, 200]
    assert_rate_limit_fields(answers[2], "address")


# settings ---------------------------------------------------------------------------------------


def test_the_login_defences_are_on_by_default_with_the_documented_values() -> None:
    settings = Settings.from_env({})

    assert settings.rate_limit_per_address == "200/second;6000/minute"
    assert (settings.login_attempts_per_hour, settings.login_backoff_free) == (100, 5)
    assert settings.login_backoff_max_seconds == 900


@pytest.mark.parametrize(
    "name", ["LOGIN_ATTEMPTS_PER_HOUR", "LOGIN_BACKOFF_FREE", "LOGIN_BACKOFF_MAX_SECONDS"]
)
def test_a_negative_login_setting_is_refused_with_its_name(name: str) -> None:
    with pytest.raises(SettingsError, match=f"SCOREBOARD_{name}=-1: must not be negative"):
        Settings.from_env({f"SCOREBOARD_{name}": "-1"})


def test_an_unparseable_limit_is_refused_naming_it(settings: Settings) -> None:
    with pytest.raises(ValueError, match="rate limit address: cannot parse 'lots'"):
        LimitSet.from_settings(replace(settings, rate_limit_per_address="lots"))


@pytest.mark.parametrize("loopback", ["127.0.0.1", "::1"])
async def test_a_loopback_peer_has_no_per_address_budget_but_per_user_limits_still_hold(
    make_api: Callable[..., Any], settings: Settings, loopback: str
) -> None:
    """A local proxy not listed as trusted (every client would share its address) or a test."""
    api: Api = await make_api(
        settings,
        rate_limit_register="2/minute",
        rate_limit_per_address="1/minute",
        rate_limit_actions="3/minute",
    )
    async with client_at(api, loopback) as local:
        registered = [
            (
                await local.post(
                    "/api/auth/register", json={"username": f"lo{uuid.uuid4().hex[:8]}", "password": PASSWORD}
                )
            ).status_code
            for _ in range(4)
        ]
        user = await api.user()
        tickets = [
            (await local.post("/api/actions", json={"type": "default"}, headers=user.auth)).status_code
            for _ in range(4)
        ]

    assert registered == [201] * 4
    assert tickets == [201, 201, 201, 429]  # the user's own limit, not the address budget (1/minute)


async def test_with_the_default_login_settings_five_failures_are_401_and_the_sixth_429(
    make_api: Callable[..., Any], settings: Settings
) -> None:
    """API.md: RATE_LIMIT_LOGIN 5/minute; the back-off must not refuse sooner than that."""
    defaults = Settings()
    api: Api = await make_api(
        settings,
        rate_limit_login=defaults.rate_limit_login,
        login_backoff_free=defaults.login_backoff_free,
        login_attempts_per_hour=defaults.login_attempts_per_hour,
    )
    user = await api.user()
    wrong = {"username": user.username, "password": "not the password at all"}

    statuses = [(await api.http.post("/api/auth/login", json=wrong)).status_code for _ in range(6)]

    assert statuses == [401] * 5 + [429]


async def test_ticket_issuance_follows_the_score_update_limit_unless_set(
    make_api: Callable[..., Any], settings: Settings
) -> None:
    followed: Api = await make_api(settings, rate_limit_score_updates="2/minute", rate_limit_actions=None)
    user = await followed.user()
    tickets = [
        (await followed.http.post("/api/actions", json={"type": "default"}, headers=user.auth)).status_code
        for _ in range(3)
    ]
    unlimited: Api = await make_api(settings, rate_limit_score_updates="off", rate_limit_actions=None)
    other = await unlimited.user()
    many = [
        (await unlimited.http.post("/api/actions", json={"type": "default"}, headers=other.auth)).status_code
        for _ in range(30)
    ]

    assert tickets == [201, 201, 429]
    assert many == [201] * 30
