"""Action tickets: POST /api/actions."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from scoreboard.config import Settings
from tests.api.support import CANONICAL_UUID, assert_problem, bearer, forge, shared_loop, write_action_types
from tests.conftest import Api

QUOTA_TYPES = """
[action_types.default]
points = 1

[action_types.quiz]
points = 5
ttl_seconds = 120
min_seconds = 10
per_user_per_hour = 2
"""


async def test_ticket_for_the_default_type_is_201_with_its_terms(api: Api) -> None:
    alice = await api.user()

    response = await api.http.post("/api/actions", json={"type": "default"}, headers=alice.auth)

    assert response.status_code == 201, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"action_id", "type", "points", "issued_at", "expires_at"}
    assert re.fullmatch(CANONICAL_UUID, body["action_id"])
    assert str(uuid.UUID(body["action_id"])) == body["action_id"]
    assert body["type"] == "default"
    assert body["points"] == 1
    issued_at = datetime.fromisoformat(body["issued_at"])
    expires_at = datetime.fromisoformat(body["expires_at"])
    assert issued_at.utcoffset() == timedelta(0)
    assert expires_at - issued_at == timedelta(seconds=600)


async def test_each_ticket_has_a_new_action_id(api: Api) -> None:
    alice = await api.user()

    ids = {await api.ticket(alice) for _ in range(3)}

    assert len(ids) == 3


async def test_ticket_of_a_configured_type_carries_its_points_and_lifetime(
    make_api: Callable[..., Any], settings: Settings, tmp_path: Path
) -> None:
    types = write_action_types(tmp_path / "types.toml", QUOTA_TYPES)
    api: Api = await make_api(settings, action_types_file=types)
    alice = await api.user()

    body = (await api.http.post("/api/actions", json={"type": "quiz"}, headers=alice.auth)).json()

    assert body["type"] == "quiz"
    assert body["points"] == 5
    lifetime = datetime.fromisoformat(body["expires_at"]) - datetime.fromisoformat(body["issued_at"])
    assert lifetime == timedelta(seconds=120)


@shared_loop
@pytest.mark.parametrize("kind", ["nope", "Default", "default ", "quiz"])
async def test_unknown_action_type_is_400(shared_api: Api, kind: str) -> None:
    response = await shared_api.http.post("/api/actions", json={"type": kind}, headers=bearer(forge()))

    assert_problem(response, 400, "unknown_action_type")


@shared_loop
@pytest.mark.parametrize(
    "body",
    [b"", b"{}", b'{"type": 1}', b'{"type": null}', b'{"type": "default", "points": 100}', b"[]", b"nope"],
)
async def test_malformed_action_request_is_400(shared_api: Api, body: bytes) -> None:
    response = await shared_api.http.post(
        "/api/actions", content=body, headers={**bearer(forge()), "content-type": "application/json"}
    )

    assert_problem(response, 400, "invalid_request")


async def test_ticket_without_a_token_is_401(api: Api) -> None:
    response = await api.http.post("/api/actions", json={"type": "default"})

    assert_problem(response, 401, "unauthenticated")


async def test_hourly_quota_of_a_type_is_429_quota_exceeded(
    make_api: Callable[..., Any], settings: Settings, tmp_path: Path
) -> None:
    types = write_action_types(tmp_path / "types.toml", QUOTA_TYPES)
    api: Api = await make_api(settings, action_types_file=types)
    alice, bob = await api.user(), await api.user()

    granted = [
        await api.http.post("/api/actions", json={"type": "quiz"}, headers=alice.auth) for _ in range(2)
    ]
    refused = await api.http.post("/api/actions", json={"type": "quiz"}, headers=alice.auth)
    other_type = await api.http.post("/api/actions", json={"type": "default"}, headers=alice.auth)
    other_user = await api.http.post("/api/actions", json={"type": "quiz"}, headers=bob.auth)

    assert [r.status_code for r in granted] == [201, 201]
    body = assert_problem(refused, 429, "quota_exceeded")
    assert "quiz" in body["detail"]
    assert int(refused.headers["retry-after"]) > 0
    assert refused.headers["ratelimit-limit"] == "2"
    assert other_type.status_code == 201
    assert other_user.status_code == 201
