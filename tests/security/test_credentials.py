"""Credentials under attack: argon2id at OWASP cost with rehash on login, login throttling with a
growing back-off and an hourly cap per account (shared by every instance), and no user enumeration
through answers or timing."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher, Type

from scoreboard.config import Settings
from tests.api.support import assert_problem
from tests.conftest import PASSWORD, Api, ManualClock
from tests.security.instances import client_at, login, two_instances

OWASP_PREFIX = "$argon2id$v=19$m=19456,t=2,p=1$"
WRONG = "not the password at all"
# Login throttling on, but loose enough that only the defence under test can refuse.
LOOSE = {"rate_limit_login": "1000/minute", "login_attempts_per_hour": 1000}


async def stored_hash(api: Api, username: str) -> str:
    credentials = await api.app.state.container.store.credentials(username)
    assert credentials is not None
    return str(credentials.password_hash)


# hashing --------------------------------------------------------------------------------------


async def test_passwords_are_stored_as_argon2id_with_owasp_parameters(api: Api) -> None:
    account = await api.register()

    hashed = await stored_hash(api, account["username"])

    assert hashed.startswith(OWASP_PREFIX), hashed
    assert PASSWORD not in hashed


async def test_a_hash_made_with_weaker_parameters_is_replaced_at_the_next_login(api: Api) -> None:
    account = await api.register()
    weak = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1, type=Type.ID).hash(PASSWORD)
    await api.app.state.container.store.update_password_hash(account["user_id"], weak)

    await api.login(account["username"])
    upgraded = await stored_hash(api, account["username"])

    assert upgraded != weak
    assert upgraded.startswith(OWASP_PREFIX), upgraded
    assert PasswordHasher().verify(upgraded, PASSWORD)


async def test_a_failed_login_leaves_an_old_hash_alone(api: Api) -> None:
    account = await api.register()
    weak = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash(PASSWORD)
    await api.app.state.container.store.update_password_hash(account["user_id"], weak)

    refused = await login(api.http, account["username"], WRONG)

    assert_problem(refused, 401, "invalid_credentials")
    assert await stored_hash(api, account["username"]) == weak


# no user enumeration ----------------------------------------------------------------------------


def comparable(response: httpx.Response) -> tuple[int, bytes, list[tuple[str, str]]]:
    headers = sorted((k, v) for k, v in response.headers.items() if k != "x-request-id")
    return response.status_code, response.content, headers


async def test_unknown_user_and_wrong_password_get_the_same_answer(api: Api) -> None:
    account = await api.register()

    wrong_password = await login(api.http, account["username"], WRONG)
    unknown_user = await login(api.http, "nobody-by-this-name", WRONG)

    assert_problem(wrong_password, 401, "invalid_credentials")
    assert comparable(unknown_user) == comparable(wrong_password)


async def test_unknown_user_and_wrong_password_take_similar_time(api: Api) -> None:
    """Without the decoy hash an unknown user would be answered many times faster (no argon2)."""
    account = await api.register()

    async def timed(username: str) -> float:
        started = time.perf_counter()
        response = await login(api.http, username, WRONG)
        assert response.status_code == 401
        return time.perf_counter() - started

    known: list[float] = []
    unknown: list[float] = []
    for _ in range(7):  # interleaved, so a burst of load elsewhere on the machine hits both
        known.append(await timed(account["username"]))
        unknown.append(await timed("nobody-by-this-name"))

    ratio = statistics.median(unknown) / statistics.median(known)
    assert 0.5 <= ratio <= 2.0, (known, unknown)


# back-off ---------------------------------------------------------------------------------------


async def waits_after_failures(api: Api, clock: ManualClock, username: str, rounds: int) -> list[int]:
    """Fail once, read the Retry-After the next attempt is refused with, wait it out; repeat."""
    waits = []
    for _ in range(rounds):
        assert_problem(await login(api.http, username, WRONG), 401, "invalid_credentials")
        refused = await login(api.http, username, WRONG)
        assert_problem(refused, 429, "rate_limited")
        waits.append(int(refused.headers["retry-after"]))
        clock.advance(waits[-1])
    return waits


async def test_the_wait_doubles_with_each_failure_after_the_free_ones(
    make_api: Callable[..., Any], settings: Settings
) -> None:
    clock = ManualClock()
    api: Api = await make_api(settings, clock=clock, login_backoff_free=2, **LOOSE)
    account = await api.register()
    free = [await login(api.http, account["username"], WRONG) for _ in range(2)]

    waits = await waits_after_failures(api, clock, account["username"], rounds=4)

    assert [r.status_code for r in free] == [401, 401]
    assert waits == [1, 2, 4, 8]


async def test_the_wait_is_capped(make_api: Callable[..., Any], settings: Settings) -> None:
    clock = ManualClock()
    api: Api = await make_api(
        settings, clock=clock, login_backoff_free=0, login_backoff_max_seconds=3, **LOOSE
    )
    account = await api.register()

    waits = await waits_after_failures(api, clock, account["username"], rounds=4)

    assert waits == [1, 2, 3, 3]


async def test_during_the_wait_even_the_right_password_is_refused_and_after_it_succeeds(
    make_api: Callable[..., Any], settings: Settings
) -> None:
    clock = ManualClock()
    api: Api = await make_api(settings, clock=clock, login_backoff_free=0, **LOOSE)
    account = await api.register()
    await login(api.http, account["username"], WRONG)

    locked = await login(api.http, account["username"])
    clock.advance(1)
    admitted = await login(api.http, account["username"])
    fresh_failure = await login(api.http, account["username"], WRONG)

    assert_problem(locked, 429, "rate_limited")
    assert locked.headers["ratelimit"] == '"login_backoff";r=0;t=1'
    assert admitted.status_code == 200, admitted.text
    # The success ended the streak: the next failure starts from the first wait again.
    assert_problem(fresh_failure, 401, "invalid_credentials")
    assert int((await login(api.http, account["username"], WRONG)).headers["retry-after"]) == 1


async def test_an_address_spraying_many_usernames_is_slowed_but_others_are_not(
    make_api: Callable[..., Any], settings: Settings
) -> None:
    api: Api = await make_api(settings, login_backoff_free=3, **LOOSE)
    victim = await api.register()
    async with client_at(api, "198.51.100.66") as attacker, client_at(api, "198.51.100.7") as bystander:
        sprayed = [await login(attacker, f"guess{i}", WRONG) for i in range(4)]
        attacker_next = await login(attacker, victim["username"])
        bystander_login = await login(bystander, victim["username"])

    assert [r.status_code for r in sprayed] == [401] * 4
    assert_problem(attacker_next, 429, "rate_limited")
    assert bystander_login.status_code == 200, bystander_login.text


async def test_guesses_at_one_account_from_many_addresses_are_slowed(
    make_api: Callable[..., Any], settings: Settings
) -> None:
    api: Api = await make_api(settings, login_backoff_free=3, **LOOSE)
    victim = await api.register()

    answers = []
    for i in range(5):
        async with client_at(api, f"198.51.100.{i + 1}") as botnet_member:
            answers.append(await login(botnet_member, victim["username"], WRONG))

    assert [r.status_code for r in answers] == [401, 401, 401, 401, 429]


# the hourly cap, across instances ---------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.redis
async def test_no_account_takes_more_failed_attempts_an_hour_than_the_cap_across_instances(
    make_api: Callable[..., Any], settings: Settings
) -> None:
    cap = 6
    async with two_instances(
        make_api,
        settings,
        rate_limit_login="1000/minute",
        login_attempts_per_hour=cap,
        login_backoff_max_seconds=0,
    ) as (first, second):
        victim, bystander = await first.register(), await first.register()
        answers = []
        for i in range(cap + 4):  # alternate instances and addresses, as a botnet behind a balancer
            async with client_at(first if i % 2 else second, f"198.51.100.{i + 1}") as client:
                answers.append(await login(client, victim["username"], WRONG))
        real_user = await login(second.http, victim["username"])
        other_account = await login(first.http, bystander["username"])

    assert [r.status_code for r in answers] == [401] * cap + [429] * 4
    refused = assert_problem(answers[-1], 429, "rate_limited")
    assert "login attempts" in refused["detail"]
    assert 1 <= int(answers[-1].headers["retry-after"]) <= 3600
    assert answers[-1].headers["ratelimit-policy"] == f'"login_attempts-3600s";q={cap};w=3600'
    assert_problem(real_user, 429, "rate_limited")  # the cap protects the account, also from its owner
    assert other_account.status_code == 200


@pytest.mark.postgres
@pytest.mark.redis
async def test_the_back_off_follows_a_username_to_another_instance(
    make_api: Callable[..., Any], settings: Settings
) -> None:
    async with two_instances(make_api, settings, login_backoff_free=1, **LOOSE) as (first, second):
        victim = await first.register()
        failures = [await login(api.http, victim["username"], WRONG) for api in (first, second)]
        elsewhere = await login(first.http, victim["username"], WRONG)

    assert [r.status_code for r in failures] == [401, 401]
    assert_problem(elsewhere, 429, "rate_limited")
