"""POST /api/score/update with bodies that must be refused: 400 invalid_request (413 for oversize).

A forged token for an unknown user is enough here: the body is refused before any database work,
and if it were not, the unknown user would make the answer something other than 400."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.api.support import SUCCESS, assert_problem, bearer, forge, shared_loop
from tests.conftest import Api

pytestmark = shared_loop

USER_ID = "0b0e3d5e-7a52-4ad3-9a2e-4c3a4b0d1e2f"
ACTION_ID = "4f8a0d2c-1b3e-4c5d-8e9f-0a1b2c3d4e5f"
TOKEN = forge(USER_ID)
LIMIT = 4096


@pytest.fixture
def api(shared_api: Api) -> Api:
    """Every test here is refused or uses users of its own: one app serves the whole module."""
    return shared_api


async def post(api: Api, content: Any, content_type: str | None = "application/json") -> Any:
    headers = bearer(TOKEN)
    if content_type is not None:
        headers["content-type"] = content_type
    return await api.http.post("/api/score/update", content=content, headers=headers)


def body(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


NON_CANONICAL_IDS = {
    "not-a-uuid": "abc",
    "empty": "",
    "uppercase": ACTION_ID.upper(),
    "mixed-case": ACTION_ID[:9] + ACTION_ID[9:].upper(),
    "braces": "{" + ACTION_ID + "}",
    "urn": "urn:uuid:" + ACTION_ID,
    "hyphen-less": ACTION_ID.replace("-", ""),
    "leading-space": " " + ACTION_ID,
    "trailing-newline": ACTION_ID + "\n",
    "too-long": ACTION_ID + "0",
    "misplaced-hyphens": ACTION_ID.replace("-", "")[:10] + "-" + ACTION_ID.replace("-", "")[10:],
    "non-hex": ACTION_ID[:-1] + "g",
}

BAD_BODIES = {
    "empty-object": b"{}",
    "missing-user_id": body(action_id=ACTION_ID),
    "missing-action_id": body(user_id=USER_ID),
    "extra-field": body(user_id=USER_ID, action_id=ACTION_ID, points=1000),
    "user_id-int": body(user_id=1, action_id=ACTION_ID),
    "user_id-null": body(user_id=None, action_id=ACTION_ID),
    "user_id-list": body(user_id=[USER_ID], action_id=ACTION_ID),
    "action_id-int": body(user_id=USER_ID, action_id=42),
    "action_id-null": body(user_id=USER_ID, action_id=None),
    "action_id-list": body(user_id=USER_ID, action_id=[ACTION_ID]),
    "action_id-object": body(user_id=USER_ID, action_id={"id": ACTION_ID}),
    "action_id-bool": body(user_id=USER_ID, action_id=True),
    "invalid-json": b'{"user_id": "' + USER_ID.encode() + b'", "action_id": ',
    "single-quotes": b"{'user_id': 'x', 'action_id': 'y'}",
    "trailing-garbage": body(user_id=USER_ID, action_id=ACTION_ID) + b"x",
    "empty": b"",
    "whitespace": b"  \n ",
    "json-array": json.dumps([USER_ID, ACTION_ID]).encode(),
    "json-string": json.dumps(ACTION_ID).encode(),
    "json-number": b"1",
    "json-null": b"null",
    "not-utf8": b'{"user_id": "\xff\xfe", "action_id": "x"}',
    **{f"user_id-{k}": body(user_id=v, action_id=ACTION_ID) for k, v in NON_CANONICAL_IDS.items()},
    **{f"action_id-{k}": body(user_id=USER_ID, action_id=v) for k, v in NON_CANONICAL_IDS.items()},
}


@pytest.mark.parametrize("kind", list(BAD_BODIES))
async def test_malformed_body_is_400_invalid_request(api: Api, kind: str) -> None:
    response = await post(api, BAD_BODIES[kind])

    assert_problem(response, 400, "invalid_request")


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", None]
)
async def test_body_of_another_content_type_is_400(api: Api, content_type: str | None) -> None:
    response = await post(api, body(user_id=USER_ID, action_id=ACTION_ID), content_type)

    assert_problem(response, 400, "invalid_request")


async def test_one_mebibyte_body_is_413_payload_too_large(api: Api) -> None:
    huge = body(user_id=USER_ID, action_id=ACTION_ID, padding="x" * 1024 * 1024)

    response = await post(api, huge)

    assert_problem(response, 413, "payload_too_large")


async def chunks(total: int, size: int = 1000) -> AsyncIterator[bytes]:
    """A body sent with chunked transfer encoding (no Content-Length)."""
    sent = 0
    while sent < total:
        piece = b" " * min(size, total - sent)
        sent += len(piece)
        yield piece


async def test_chunked_body_over_4_kib_is_413(api: Api) -> None:
    request = api.http.build_request(
        "POST",
        "/api/score/update",
        content=chunks(LIMIT + 1),
        headers={**bearer(TOKEN), "content-type": "application/json"},
    )
    assert "content-length" not in request.headers
    assert request.headers["transfer-encoding"] == "chunked"

    response = await api.http.send(request)

    assert_problem(response, 413, "payload_too_large")


async def test_body_of_exactly_4_kib_is_read_and_one_byte_more_is_413(api: Api) -> None:
    alice = await api.user()
    action_id = await api.ticket(alice)
    compact = body(user_id=alice.user_id, action_id=action_id)
    at_limit = compact[:-1] + b" " * (LIMIT - len(compact)) + b"}"
    over = compact[:-1] + b" " * (LIMIT + 1 - len(compact)) + b"}"
    assert (len(at_limit), len(over)) == (LIMIT, LIMIT + 1)
    headers = {**alice.auth, "content-type": "application/json"}

    refused = await api.http.post("/api/score/update", content=over, headers=headers)
    accepted = await api.http.post("/api/score/update", content=at_limit, headers=headers)

    assert_problem(refused, 413, "payload_too_large")
    assert accepted.json() == {"message": SUCCESS, "new_score": 1, "rank": 1}


async def test_small_chunked_body_is_accepted(api: Api) -> None:
    alice = await api.user()
    action_id = await api.ticket(alice)

    async def pieces() -> AsyncIterator[bytes]:
        whole = body(user_id=alice.user_id, action_id=action_id)
        for start in range(0, len(whole), 7):
            yield whole[start : start + 7]

    response = await api.http.post(
        "/api/score/update", content=pieces(), headers={**alice.auth, "content-type": "application/json"}
    )

    assert response.status_code == 200, response.text


async def test_json_content_type_with_charset_is_accepted(api: Api) -> None:
    alice = await api.user()
    action_id = await api.ticket(alice)

    response = await api.http.post(
        "/api/score/update",
        content=body(user_id=alice.user_id, action_id=action_id),
        headers={**alice.auth, "content-type": "application/json; charset=utf-8"},
    )

    assert response.status_code == 200, response.text


async def test_validation_problem_names_the_bad_field(api: Api) -> None:
    response = await post(api, body(user_id=USER_ID, action_id=str(uuid.uuid4()).upper()))

    assert "action_id" in assert_problem(response, 400, "invalid_request")["detail"]


async def test_validation_errors_are_never_422(api: Api) -> None:
    statuses = {(await post(api, content)).status_code for content in BAD_BODIES.values()}

    assert statuses == {400}
