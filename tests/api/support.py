"""Helpers for the API tier: problem-document checks, hand-made tokens, direct database access."""

from __future__ import annotations

import base64
import json
import sqlite3
import time
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from prometheus_client.parser import text_string_to_metric_families

from scoreboard.config import Settings
from tests.conftest import TEST_SECRET

# Tests using the module-scoped `shared_api` fixture must run in the module's event loop.
shared_loop = pytest.mark.asyncio(loop_scope="module")

PROBLEM_JSON = "application/problem+json"
SUCCESS = "Score updated successfully."
CANONICAL_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The response is an RFC 9457 problem document with this status and code; its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON, response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["code"] == code
    for field in ("type", "title", "detail"):
        assert isinstance(body[field], str), body
        assert body[field], body
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def forge(
    user_id: str | None = None,
    *,
    secret: Any = TEST_SECRET,
    algorithm: str = "HS256",
    **claims: Any,
) -> str:
    """An access token made outside the service: valid for the test app unless `claims` (a None
    value drops a claim), `secret` or `algorithm` say otherwise."""
    now = int(time.time())
    payload: dict[str, Any] = {
        "sub": user_id or str(uuid.uuid4()),
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": str(uuid.uuid4()),
        "iss": "scoreboard",
        "aud": "scoreboard",
        "roles": ["user"],
    }
    payload.update(claims)
    payload = {name: value for name, value in payload.items() if value is not None}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)  # HS512 with the test secret
        return jwt.encode(payload, secret, algorithm=algorithm)


def unsigned_token(user_id: str | None = None) -> str:
    """A token with `alg: none` and an empty signature: the classic forgery."""

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    claims = jwt.decode(forge(user_id), options={"verify_signature": False})
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def database_path(settings: Settings) -> Path:
    return Path(settings.database_url.removeprefix("sqlite:///"))


@contextmanager
def database(settings: Settings) -> Iterator[sqlite3.Connection]:
    """A side connection to the app's SQLite file, committing on success."""
    conn = sqlite3.connect(database_path(settings), isolation_level=None, timeout=10)
    conn.row_factory = sqlite3.Row
    try:
        yield conn
    finally:
        conn.close()


def stored_score(settings: Settings, user_id: str) -> int:
    with database(settings) as conn:
        row = conn.execute("SELECT score FROM user_score WHERE user_id = ?", (user_id,)).fetchone()
    return int(row["score"])


def redeemed_at(settings: Settings, action_id: str) -> int | None:
    with database(settings) as conn:
        row = conn.execute("SELECT redeemed_at FROM action_log WHERE action_id = ?", (action_id,)).fetchone()
    return None if row is None else row["redeemed_at"]


def write_action_types(path: Path, text: str) -> Path:
    path.write_text(text, "utf-8")
    return path


def metric(text: str, sample_name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus text exposition (0 when absent)."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == sample_name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0
