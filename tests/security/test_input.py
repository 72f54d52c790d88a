"""Input hardening through the ASGI app: strict JSON, strict content types, canonical UUIDs only.

(OWASP API8:2023 security misconfiguration and API4:2023 unrestricted resource consumption: the
parser is the first thing an attacker reaches.) Bodies over the size limit, sent through real sockets,
are in test_input_sockets.py; usernames and SQL in test_accounts_and_sql.py.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from scoreboard.config import Settings
from scoreboard.domain.actions import ActionPolicy
from tests.api.support import SUCCESS, assert_problem
from tests.conftest import PASSWORD, Api, User

# Generous: each of these answers in well under a millisecond; the bound only has to catch a
# parser that goes quadratic or recursive on a noisy, shared 2-core machine.
BOUNDED_SECONDS = 2.0

# Under the 4 KiB limit, so the parser itself meets them: 400.
HOSTILE_JSON = {
    "nan": b'{"user_id": NaN, "action_id": NaN}',
    "infinity": b'{"user_id": Infinity, "action_id": -Infinity}',
    "nan-in-string-position": b'{"type": NaN}',
    "4000-digit-integer": b'{"user_id": ' + b"9" * 4000 + b"}",
    "4000-digit-float": b'{"user_id": 0.' + b"1" * 4000 + b"e99999}",
    "4000-open-brackets": b"[" * 4000,
    "800-nested-objects": b'{"a":' * 800,
    "deep-nesting-inside-a-field": b'{"user_id": ' + b"[" * 2000 + b"]" * 2000 + b"}",
}
# The sizes the issue names are over the limit: refused (413) before any parsing, just as fast.
OVERSIZED_JSON = {
    "10000-digit-integer": b'{"user_id": ' + b"9" * 10_000 + b"}",
    "100000-open-brackets": b"[" * 100_000,
    "100000-nested-objects": b'{"a":' * 100_000,
}
ENDPOINTS = [
    "/api/auth/register",
    "/api/auth/login",
    "/api/auth/refresh",
    "/api/actions",
    "/api/score/update",
]


def spellings(canonical: str) -> dict[str, str]:
    """What `uuid.UUID()` accepts for the same id, besides the canonical form."""
    return {
        "uppercase": canonical.upper(),
        "braces": "{" + canonical + "}",
        "urn": "urn:uuid:" + canonical,
        "hyphen-less": canonical.replace("-", ""),
        "braces-uppercase-hyphen-less": "{" + canonical.replace("-", "").upper() + "}",
    }


async def post_raw(api: Api, path: str, content: bytes, user: User | None = None, **headers: str) -> Any:
    sent = {"content-type": "application/json", **(user.auth if user else {}), **headers}
    return await api.http.post(path, content=content, headers=sent)


def update_body(user_id: str, action_id: str) -> bytes:
    return json.dumps({"user_id": user_id, "action_id": action_id}).encode()


async def score_of(api: Api, user: User) -> int:
    response = await api.http.get(f"/api/users/{user.user_id}/score")
    assert response.status_code == 200, response.text
    return int(response.json()["score"])


# --- hostile JSON ------------------------------------------------------------------------------------


REFUSALS = {
    **{kind: (body, 400, "invalid_request") for kind, body in HOSTILE_JSON.items()},
    **{kind: (body, 413, "payload_too_large") for kind, body in OVERSIZED_JSON.items()},
}


@pytest.mark.parametrize("kind", list(REFUSALS))
async def test_hostile_json_is_refused_in_bounded_time_on_every_json_endpoint(api: Api, kind: str) -> None:
    content, status, code = REFUSALS[kind]
    user = await api.user()
    for path in ENDPOINTS:
        started = time.perf_counter()
        response = await post_raw(api, path, content, user)
        elapsed = time.perf_counter() - started

        assert_problem(response, status, code)
        assert elapsed < BOUNDED_SECONDS, f"{path} took {elapsed:.2f}s on {kind}"


async def test_a_duplicate_key_is_400_and_does_not_redeem_the_action(api: Api) -> None:
    alice, mallory = await api.user(), await api.user()
    action_id = await api.ticket(alice)
    bodies = [
        b'{"user_id": "%s", "user_id": "%s", "action_id": "%s"}'
        % (mallory.user_id.encode(), alice.user_id.encode(), action_id.encode()),
        b'{"user_id": "%s", "action_id": "%s", "action_id": "%s"}'
        % (alice.user_id.encode(), str(uuid.uuid4()).encode(), action_id.encode()),
        # An escaped key is the same key once decoded.
        b'{"user_id": "%s", "user\\u005fid": "%s", "action_id": "%s"}'
        % (alice.user_id.encode(), alice.user_id.encode(), action_id.encode()),
    ]

    for content in bodies:
        assert_problem(await post_raw(api, "/api/score/update", content, alice), 400, "invalid_request")

    assert await score_of(api, alice) == 0
    assert (await api.update(alice, action_id)).status_code == 200  # the ticket was not used up


async def test_a_duplicate_key_in_registration_is_400_and_creates_no_account(api: Api) -> None:
    content = b'{"username": "dup_first", "password": "%s", "username": "dup_second"}' % PASSWORD.encode()

    response = await post_raw(api, "/api/auth/register", content)

    assert_problem(response, 400, "invalid_request")
    for username in ("dup_first", "dup_second"):
        login = await api.http.post("/api/auth/login", json={"username": username, "password": PASSWORD})
        assert_problem(login, 401, "invalid_credentials")


async def test_a_value_that_repeats_a_key_name_is_not_a_duplicate(api: Api) -> None:
    body = {"username": "display_echo", "password": PASSWORD, "display_name": "username"}

    response = await api.http.post("/api/auth/register", json=body)

    assert response.status_code == 201, response.text


# --- content types -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json; charset=latin-1",
        "application/json; charset=utf-16",
        "application/json; boundary=x",
        "application/vnd.api+json",
        "application/merge-patch+json",
        "text/json",
        "application/jsonx",
        "application/x-json",
    ],
)
async def test_a_content_type_other_than_utf8_json_is_400(api: Api, content_type: str) -> None:
    alice = await api.user()
    action_id = await api.ticket(alice)

    response = await post_raw(
        api,
        "/api/score/update",
        update_body(alice.user_id, action_id),
        alice,
        **{"content-type": content_type},
    )

    assert_problem(response, 400, "invalid_request")
    assert await score_of(api, alice) == 0


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "Application/JSON",
        "application/json;charset=UTF-8",
        'application/json; charset="utf-8"',
    ],
)
async def test_json_with_or_without_a_utf8_charset_is_accepted(api: Api, content_type: str) -> None:
    alice = await api.user()
    action_id = await api.ticket(alice)

    response = await post_raw(
        api,
        "/api/score/update",
        update_body(alice.user_id, action_id),
        alice,
        **{"content-type": content_type},
    )

    assert response.status_code == 200, response.text


# --- sizes counted on the bytes received (the ASGI side; sockets in test_input_sockets.py) -----------


@pytest.mark.parametrize("declared", ["10", "0", "not-a-number", "-1"])
async def test_a_lying_content_length_does_not_let_a_large_body_through(api: Api, declared: str) -> None:
    alice = await api.user()
    padded = b'{"user_id": "%s", "action_id": "%s"' % (alice.user_id.encode(), str(uuid.uuid4()).encode())
    padded += b" " * 5000 + b"}"
    request = api.http.build_request(
        "POST",
        "/api/score/update",
        content=padded,
        headers={**alice.auth, "content-type": "application/json"},
    )
    request.headers["content-length"] = declared

    response = await api.http.send(request)

    assert_problem(response, 413, "payload_too_large")


# --- canonical UUIDs only ----------------------------------------------------------------------------


@pytest.mark.parametrize("policy", [ActionPolicy.TICKETED, ActionPolicy.OPEN])
async def test_a_redeemed_action_cannot_be_redeemed_again_under_another_spelling(
    make_api: Callable[..., Any], settings: Settings, policy: ActionPolicy
) -> None:
    api: Api = await make_api(settings, action_policy=policy)
    alice = await api.user()
    action_id = await api.ticket(alice) if policy is ActionPolicy.TICKETED else str(uuid.uuid4())
    first = await api.update(alice, action_id)
    assert first.json() == {"message": SUCCESS, "new_score": 1, "rank": 1}

    for spelling in spellings(action_id).values():
        assert_problem(await api.update(alice, spelling), 400, "invalid_request")
    for spelling in spellings(alice.user_id).values():
        assert_problem(await api.update(alice, str(uuid.uuid4()), user_id=spelling), 400, "invalid_request")

    assert await score_of(api, alice) == 1
    assert_problem(await api.update(alice, action_id), 409, "duplicate_action")


async def test_a_user_id_in_the_path_must_be_canonical(api: Api) -> None:
    alice = await api.user()
    variants = {**spellings(alice.user_id), "trailing-newline": alice.user_id + "%0A"}

    for spelling in variants.values():
        assert_problem(await api.http.get(f"/api/users/{spelling}/score"), 400, "invalid_request")

    assert (await api.http.get(f"/api/users/{alice.user_id}/score")).status_code == 200
