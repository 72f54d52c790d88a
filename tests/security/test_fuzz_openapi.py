"""Fuzzing the served OpenAPI description with schemathesis, against a real `scoreboard serve`.

The description is built in-process at collection time (so each operation is its own test; the
fixture-based lazy loader does not work with pytest 9) and checked to be exactly what the server
serves at `/openapi.json`.

Every operation in `/openapi.json` (the SSE stream aside: it never ends) gets schema-valid and
schema-violating requests, authenticated as a real user. Every answer must be a status the
description documents for that operation, in the documented content type and shape, never a 5xx;
every error must be a problem document. Bounded: a fixed number of examples per operation and a
fixed seed, so CI runs the same inputs in well under a minute; raise FUZZ_EXAMPLES (and unset the
seed with FUZZ_RANDOM=1) for a longer campaign. (OWASP API8:2023 security misconfiguration,
API4:2023 unrestricted resource consumption.)
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from scoreboard.app import create_app
from scoreboard.config import Settings
from tests.conftest import PASSWORD, TEST_SECRET
from tests.e2e.server import Server, Servers

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "100"))
DERANDOMIZE = os.environ.get("FUZZ_RANDOM", "") == ""
PROBLEM_FIELDS = {"type": str, "title": str, "status": int, "detail": str, "code": str}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    pool = Servers(tmp_path_factory.mktemp("fuzz"))
    try:
        yield pool.start("fuzz")
    finally:
        pool.stop_all()


def login(server: Server, username: str) -> str:
    with httpx.Client(base_url=server.base_url, timeout=10.0) as http:
        response = http.post("/api/auth/login", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


@pytest.fixture(scope="module")
def username(server: Server) -> str:
    name = f"fuzz_{uuid.uuid4().hex[:12]}"
    with httpx.Client(base_url=server.base_url, timeout=10.0) as http:
        response = http.post("/api/auth/register", json={"username": name, "password": PASSWORD})
    assert response.status_code == 201, response.text
    return name


@pytest.fixture(scope="module")
def token(server: Server, username: str) -> str:
    return login(server, username)


def problem_document(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every 4xx/5xx is an RFC 9457 problem document with a stable code and its own status."""
    if response.status_code < 400:
        return None
    content_type = response.headers.get("content-type", [""])
    content_type = content_type[0] if isinstance(content_type, list) else content_type
    assert content_type == "application/problem+json", f"{response.status_code} as {content_type!r}"
    body = response.json()
    for field, kind in PROBLEM_FIELDS.items():
        assert isinstance(body.get(field), kind), f"problem field {field!r} missing or not {kind.__name__}"
    assert body["status"] == response.status_code
    assert body["code"], "an empty problem code"
    return True


def described() -> dict[str, Any]:
    """The OpenAPI description, from an app that is built but never started (no I/O)."""
    settings = Settings(
        database_url="sqlite:///unused/never-opened.db", jwt_secret=TEST_SECRET, log_format="json"
    )
    return create_app(settings).openapi()


DESCRIPTION = described()
schema = schemathesis.openapi.from_dict(DESCRIPTION).exclude(path="/api/leaderboard/stream")
schema.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
    max_examples=EXAMPLES,
    deterministic=DERANDOMIZE,
)
# Schema-violating requests must be refused: 400 (or 413 when too large, 401 before the body is read).
schema.config.checks.negative_data_rejection.expected_statuses = ["400", "401", "413"]


def test_the_fuzzed_description_is_the_served_one(server: Server) -> None:
    served = httpx.get(f"{server.base_url}/openapi.json", timeout=10.0)

    assert served.json() == DESCRIPTION


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_every_answer_is_documented_and_no_input_breaks_the_server(
    case: Any, server: Server, token: str, username: str
) -> None:
    # Logging out revokes the token it carries: that operation gets a session of its own.
    bearer = login(server, username) if case.path == "/api/auth/logout" else token
    case.call_and_validate(
        base_url=server.base_url,
        headers={"Authorization": f"Bearer {bearer}"},
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
            negative_data_rejection,
            problem_document,
        ],
    )
