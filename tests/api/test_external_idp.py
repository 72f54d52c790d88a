"""Tokens of an external identity provider, verified through its JWKS served over real HTTP by a
tiny server the test starts, signed with keys the test generates."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from scoreboard.config import Settings
from tests.api.support import assert_problem, bearer, metric
from tests.conftest import Api
from tests.token_support import IDP_ISSUER, IdentityProvider, serving_jwks


@pytest.fixture
def idp() -> Iterator[IdentityProvider]:
    provider = IdentityProvider()
    provider.add_key("EdDSA")
    with serving_jwks(provider) as served:
        yield served


@pytest.fixture
async def api(make_api: Callable[..., Any], settings: Settings, idp: IdentityProvider) -> Api:
    app: Api = await make_api(
        settings,
        jwt_jwks_url=idp.url,
        jwt_external_issuer=IDP_ISSUER,
        jwt_external_roles=("service", "user"),
    )
    return app


def first_kid(idp: IdentityProvider) -> str:
    return next(iter(idp.keys))


async def test_keys_are_fetched_once_at_start_up(api: Api, idp: IdentityProvider) -> None:
    metrics = (await api.http.get("/metrics")).text

    assert idp.fetches == 1
    assert metric(metrics, "scoreboard_jwks_fetches_total", outcome="fetched") == 1


async def test_a_game_server_of_the_provider_redeems_a_ticket_the_player_requested(
    api: Api, idp: IdentityProvider
) -> None:
    alice = await api.user()
    action_id = await api.ticket(alice)
    service = idp.token(first_kid(idp), "game-server-1", ["service"])

    response = await api.http.post(
        "/api/score/update", json={"user_id": alice.user_id, "action_id": action_id}, headers=bearer(service)
    )

    assert response.status_code == 200, response.text
    assert response.json()["new_score"] == 1


async def test_a_service_identity_of_the_provider_holds_no_tickets(api: Api, idp: IdentityProvider) -> None:
    service = idp.token(first_kid(idp), "game-server-1", ["service"])

    response = await api.http.post("/api/actions", json={"type": "default"}, headers=bearer(service))

    assert_problem(response, 403, "forbidden")


async def test_a_provider_token_for_a_scoreboard_user_acts_as_that_user(
    api: Api, idp: IdentityProvider
) -> None:
    alice = await api.user()
    token = idp.token(first_kid(idp), alice.user_id, ["user"])

    ticket = await api.http.post("/api/actions", json={"type": "default"}, headers=bearer(token))
    update = await api.http.post(
        "/api/score/update",
        json={"user_id": alice.user_id, "action_id": ticket.json()["action_id"]},
        headers=bearer(token),
    )
    for_bob = await api.http.post(
        "/api/score/update",
        json={"user_id": (await api.user()).user_id, "action_id": str(uuid.uuid4())},
        headers=bearer(token),
    )

    assert ticket.status_code == 201, ticket.text
    assert update.status_code == 200, update.text
    assert_problem(for_bob, 403, "forbidden")


@pytest.mark.parametrize("subject", [str(uuid.uuid4()), "not-a-uuid"])
async def test_a_provider_token_for_someone_who_is_no_user_here_is_refused(
    api: Api, idp: IdentityProvider, subject: str
) -> None:
    token = idp.token(first_kid(idp), subject, ["user"])

    response = await api.http.post("/api/actions", json={"type": "default"}, headers=bearer(token))

    body = assert_problem(response, 401, "unauthenticated")
    assert "not a scoreboard user" in body["detail"]


async def test_a_key_the_provider_rotates_in_is_fetched_once_and_then_trusted(
    api: Api, idp: IdentityProvider
) -> None:
    alice = await api.user()
    action_id = await api.ticket(alice)
    new_kid = idp.add_key("RS256")
    service = idp.token(new_kid, "game-server-1", ["service"])

    response = await api.http.post(
        "/api/score/update", json={"user_id": alice.user_id, "action_id": action_id}, headers=bearer(service)
    )

    assert response.status_code == 200, response.text
    assert idp.fetches == 2, "start-up, then one fetch for the new key id"


async def test_random_key_ids_do_not_make_the_server_hammer_the_provider(
    api: Api, idp: IdentityProvider
) -> None:
    refused = []
    for _ in range(5):
        idp_kid = idp.add_key()
        token = idp.token(idp_kid, "game-server-1", ["service"])
        del idp.keys[idp_kid]  # the provider never publishes it: an attacker's key id
        response = await api.http.post("/api/actions", json={"type": "default"}, headers=bearer(token))
        refused.append(assert_problem(response, 401, "unauthenticated")["detail"])

    assert all("unknown key id" in detail for detail in refused)
    assert idp.fetches == 2, "start-up, then one forced fetch per 10 s however many unknown key ids"


async def test_a_provider_token_with_our_issuer_is_refused(api: Api, idp: IdentityProvider) -> None:
    alice = await api.user()
    forged = idp.token(first_kid(idp), alice.user_id, ["user"], iss="scoreboard")

    response = await api.http.post("/api/actions", json={"type": "default"}, headers=bearer(forged))

    assert "wrong issuer" in assert_problem(response, 401, "unauthenticated")["detail"]


async def test_a_provider_token_for_another_audience_is_refused(api: Api, idp: IdentityProvider) -> None:
    token = idp.token(first_kid(idp), "game-server-1", ["service"], aud="another-api")

    response = await api.http.post("/api/actions", json={"type": "default"}, headers=bearer(token))

    assert "wrong audience" in assert_problem(response, 401, "unauthenticated")["detail"]


async def test_a_provider_outage_at_start_up_does_not_stop_the_service(
    make_api: Callable[..., Any], settings: Settings
) -> None:
    provider = IdentityProvider()
    with serving_jwks(provider) as served:
        url = served.url  # the server stops at the end of the block: nothing answers at `url`
    api: Api = await make_api(settings, jwt_jwks_url=url, jwt_external_issuer=IDP_ISSUER)
    alice = await api.user()

    response = await api.http.post("/api/actions", json={"type": "default"}, headers=alice.auth)

    assert response.status_code == 201, "our own tokens work while the provider is down"
