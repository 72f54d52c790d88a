"""Rate limits on POST /api/score/update: 429 rate_limited with Retry-After and RateLimit-* headers,
checked before the body is read."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from scoreboard.config import Settings
from tests.api.support import assert_problem
from tests.conftest import Api


async def limited_api(make_api: Callable[..., Any], settings: Settings) -> Api:
    api: Api = await make_api(settings, rate_limit_score_updates="2/minute")
    return api


async def test_update_over_the_limit_is_429_with_rate_limit_headers(
    make_api: Callable[..., Any], settings: Settings
) -> None:
    api = await limited_api(make_api, settings)
    alice = await api.user()
    tickets = [await api.ticket(alice) for _ in range(3)]

    admitted = [await api.update(alice, action_id) for action_id in tickets[:2]]
    refused = await api.update(alice, tickets[2])

    assert [r.status_code for r in admitted] == [200, 200]
    body = assert_problem(refused, 429, "rate_limited")
    assert "retry" in body["detail"]
    retry_after = int(refused.headers["retry-after"])
    assert 1 <= retry_after <= 60
    assert refused.headers["ratelimit-limit"] == "2"
    assert refused.headers["ratelimit-remaining"] == "0"
    assert 1 <= int(refused.headers["ratelimit-reset"]) <= 60
    assert refused.headers["ratelimit-policy"] == '"score_updates-60s";q=2;w=60'
    assert refused.headers["ratelimit"] == f'"score_updates-60s";r=0;t={retry_after}'


async def test_rate_limit_is_checked_before_the_body(
    make_api: Callable[..., Any], settings: Settings
) -> None:
    api = await limited_api(make_api, settings)
    alice = await api.user()
    headers = {**alice.auth, "content-type": "application/json"}

    first, second = [
        await api.http.post("/api/score/update", content=b"{", headers=headers) for _ in range(2)
    ]
    third = await api.http.post("/api/score/update", content=b"{", headers=headers)
    oversize = await api.http.post("/api/score/update", content=b" " * 10_000, headers=headers)

    assert_problem(first, 400, "invalid_request")
    assert_problem(second, 400, "invalid_request")
    assert_problem(third, 429, "rate_limited")
    assert_problem(oversize, 429, "rate_limited")


async def test_rate_limit_is_per_user(make_api: Callable[..., Any], settings: Settings) -> None:
    api = await limited_api(make_api, settings)
    alice, bob = await api.user(), await api.user()
    for _ in range(2):
        await api.update(alice, await api.ticket(alice))
    bob_ticket = await api.ticket(bob)

    alice_refused = await api.update(alice, await api.ticket(alice))
    bob_admitted = await api.update(bob, bob_ticket)

    assert_problem(alice_refused, 429, "rate_limited")
    assert bob_admitted.status_code == 200


async def test_unauthenticated_requests_do_not_spend_a_users_allowance(
    make_api: Callable[..., Any], settings: Settings
) -> None:
    api = await limited_api(make_api, settings)
    alice = await api.user()
    for _ in range(5):
        await api.http.post("/api/score/update", json={}, headers={"Authorization": "Bearer nope"})

    responses = [await api.update(alice, await api.ticket(alice)) for _ in range(2)]

    assert [r.status_code for r in responses] == [200, 200]


async def test_rate_limits_off_admits_a_burst(api: Api) -> None:
    alice = await api.user()

    assert await api.earn(alice, 12) == 12
