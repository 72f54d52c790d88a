"""The OWASP API Security Top 10 (2023), item by item: which tests in this folder hold each defence,
and the tests for the items no other file covers (API3 object properties, API9 inventory).

The map is checked, not just written down: every test it names must exist, so deleting or renaming
one fails here until the map (and docs/security.md, which mirrors it) says what covers that item now.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import pytest

from scoreboard.config import Settings
from tests.api.support import assert_problem, stored_score
from tests.conftest import Api

THIS = "test_owasp_api_top10"
OWASP_API_TOP10_2023: dict[str, list[str]] = {
    "API1 Broken Object Level Authorization": [
        "test_anti_cheat::test_a_ticket_redeemed_by_another_user_is_403_and_stays_the_owners",
        "test_anti_cheat::test_a_user_cannot_redeem_on_another_users_behalf",
        "test_anti_cheat::test_a_service_cannot_move_a_ticket_to_another_user",
    ],
    "API2 Broken Authentication": [
        "test_tokens::test_alg_none_is_refused",
        "test_tokens::test_hs256_signed_with_our_rsa_public_key_is_refused",
        "test_tokens::test_a_token_expired_beyond_the_leeway_is_refused",
        "test_credentials::test_unknown_user_and_wrong_password_take_similar_time",
        "test_credentials::test_no_account_takes_more_failed_attempts_an_hour_than_the_cap_across_instances",
        "test_admin_api::test_banned_users_tokens_refresh_tokens_and_login_stop_working",
    ],
    "API3 Broken Object Property Level Authorization": [
        f"{THIS}::test_a_body_cannot_set_a_score_a_role_or_another_property_the_server_owns",
        f"{THIS}::test_no_answer_carries_a_password_hash_or_another_users_secrets",
    ],
    "API4 Unrestricted Resource Consumption": [
        "test_rate_limits::test_each_configured_limit_refuses_the_call_past_it",
        "test_input_sockets::test_a_chunked_body_is_refused_once_the_received_bytes_pass_the_limit",
        "test_input::test_hostile_json_is_refused_in_bounded_time_on_every_json_endpoint",
        "test_websocket::test_one_address_may_hold_only_its_share_of_connections",
        "test_websocket::test_a_flooding_client_is_closed_with_1008_counted_and_others_keep_their_updates",
    ],
    "API5 Broken Function Level Authorization": [
        "test_admin_api::test_admin_calls_are_401_anonymous_and_403_for_users_and_services",
        "test_admin_api::test_a_forged_admin_role_needs_the_signing_key",
    ],
    "API6 Unrestricted Access to Sensitive Business Flows": [
        "test_anti_cheat::test_a_ticket_is_single_use",
        "test_anti_cheat::test_too_soon_is_403_and_does_not_use_up_the_ticket",
        "test_anti_cheat::test_hourly_quota_is_per_user_and_per_type",
        "test_input::test_a_redeemed_action_cannot_be_redeemed_again_under_another_spelling",
    ],
    "API7 Server Side Request Forgery": [
        "test_tokens::test_a_key_set_url_in_the_token_header_is_never_fetched",
    ],
    "API8 Security Misconfiguration": [
        "test_csrf_cors::test_cors_is_off_unless_origins_are_configured",
        "test_csrf_cors::test_a_wildcard_origin_is_refused_at_startup",
        "test_csrf_cors::test_the_access_cookie_is_httponly_strict_and_secure_over_tls",
        "test_csrf_cors::test_a_cookie_authenticated_write_without_the_csrf_header_is_403",
        "test_fuzz_openapi::test_every_answer_is_documented_and_no_input_breaks_the_server",
    ],
    "API9 Improper Inventory Management": [
        "test_fuzz_openapi::test_the_fuzzed_description_is_the_served_one",
        f"{THIS}::test_every_http_route_the_app_serves_is_in_its_api_description",
    ],
    "API10 Unsafe Consumption of APIs": [
        "test_tokens::test_the_identity_provider_cannot_mint_our_own_tokens",
        "test_tokens::test_an_identity_provider_token_signed_by_someone_else_is_refused",
    ],
}


@pytest.mark.parametrize("item", sorted(OWASP_API_TOP10_2023))
def test_each_owasp_item_is_held_by_tests_that_exist(item: str) -> None:
    tests = OWASP_API_TOP10_2023[item]
    assert tests, f"{item} has no test"
    for name in tests:
        module_name, function = name.split("::")
        module = importlib.import_module(f"tests.security.{module_name}")
        assert callable(getattr(module, function, None)), f"{item}: {name} does not exist"


# --- API3: properties the server owns cannot be written, secrets are never read ----------------------


@pytest.mark.parametrize(
    ("path", "extra"),
    [
        ("/api/auth/register", {"roles": ["admin"]}),
        ("/api/auth/register", {"score": 1000}),
        ("/api/auth/register", {"user_id": "00000000-0000-4000-8000-000000000000"}),
        ("/api/score/update", {"points": 1000}),
        ("/api/score/update", {"new_score": 1000}),
        ("/api/actions", {"points": 1000}),
    ],
)
async def test_a_body_cannot_set_a_score_a_role_or_another_property_the_server_owns(
    api: Api, settings: Settings, path: str, extra: dict[str, Any]
) -> None:
    alice = await api.user()
    base: dict[str, Any] = {
        "/api/auth/register": {"username": "mallory_x", "password": "correct horse battery"},
        "/api/score/update": {"user_id": alice.user_id, "action_id": await api.ticket(alice)},
        "/api/actions": {"type": "default"},
    }[path]

    answer = await api.http.post(path, json={**base, **extra}, headers=alice.auth)

    assert_problem(answer, 400, "invalid_request")
    assert stored_score(settings, alice.user_id) == 0
    assert (
        await api.http.post("/api/auth/login", json={"username": "mallory_x", "password": "x" * 10})
    ).status_code == 401


async def test_no_answer_carries_a_password_hash_or_another_users_secrets(api: Api) -> None:
    alice, bob = await api.user(), await api.user()
    await api.earn(alice)
    answers = [
        await api.http.get(f"/api/users/{alice.user_id}/score", headers=bob.auth),
        await api.http.get("/api/leaderboard", headers=bob.auth),
        await api.http.post(
            "/api/auth/login", json={"username": bob.username, "password": "wrong password!"}
        ),
    ]
    text = " ".join(answer.text + str(answer.headers) for answer in answers)

    for secret in ("$argon2", "password_hash", alice.token, str(alice.tokens["refresh_token"])):
        assert secret not in text, secret


# --- API9: nothing served that the description does not list -------------------------------------


UNDOCUMENTED_BY_DESIGN = {"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json", "/", "/static"}


async def test_every_http_route_the_app_serves_is_in_its_api_description(api: Api) -> None:
    described = set((await api.http.get("/openapi.json")).json()["paths"])
    served = {path for route in api.app.routes if (path := getattr(route, "path", ""))}

    undocumented = {path for path in served - described if path not in UNDOCUMENTED_BY_DESIGN}
    assert not undocumented, f"served but not described: {sorted(undocumented)}"


@pytest.fixture
async def api(make_api: Callable[..., Any], settings: Settings) -> Api:
    started: Api = await make_api(settings)
    return started
