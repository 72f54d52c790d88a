"""Sentry: a real internal error inside a request reaches a Sentry endpoint (a sink started here),
tagged with the request id, release and environment, and without any secret the request carried."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import sentry_sdk

import scoreboard
from scoreboard.config import Settings
from scoreboard.observability.errors import REDACTED, scrub
from tests.api.support import forge
from tests.conftest import PASSWORD, Api
from tests.sinks import HttpSink


@pytest.fixture
def sink() -> Iterator[HttpSink]:
    with HttpSink() as server:
        yield server
    sentry_sdk.get_global_scope().set_client(None)  # later tests run without a Sentry client


def crashing_client(api: Api) -> httpx.AsyncClient:
    """A client that gets the 500 answer, as a real one would, instead of the app's exception (the
    server re-raises a crash after answering, for its own log)."""
    transport = httpx.ASGITransport(app=api.app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


def envelope_items(body: bytes) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(item header, payload) pairs of a Sentry envelope (header line, then item lines in pairs)."""
    lines = body.split(b"\n")[1:]
    return [(json.loads(lines[i]), json.loads(lines[i + 1])) for i in range(0, len(lines) - 1, 2)]


async def test_a_crash_inside_a_request_reaches_sentry_tagged_and_without_secrets(
    make_api: Callable[..., Any], settings: Settings, sink: HttpSink
) -> None:
    api: Api = await make_api(
        settings, sentry_dsn=f"http://public@127.0.0.1:{sink.port}/1", environment="staging"
    )
    alice = await api.user()
    csrf = alice.tokens["csrf_token"]
    api.app.state.container.store._reader.shutdown()  # the database reader is gone: a real bug path

    async with crashing_client(api) as client:
        response = await client.post(
            "/api/auth/login",
            json={"username": alice.username, "password": PASSWORD},
            headers={
                "X-Request-ID": "crash-1",
                "Authorization": f"Bearer {alice.token}",
                "X-CSRF-Token": csrf,
                "Cookie": f"access_token={alice.token}; csrf_token={csrf}",
            },
        )
    sentry_sdk.flush(timeout=5)
    received = sink.wait(1)

    assert response.status_code == 500
    assert response.json()["code"] == "internal_error"
    assert received, "no envelope reached the Sentry sink"
    assert received[0].path == "/api/1/envelope/"
    events = [
        payload
        for item in received
        for header, payload in envelope_items(item.body)
        if header["type"] == "event"
    ]
    assert len(events) == 1
    event = events[0]
    assert event["tags"]["request_id"] == "crash-1"
    assert event["tags"]["route"] == "/api/auth/login"
    assert event["release"] == f"scoreboard@{scoreboard.__version__}"
    assert event["environment"] == "staging"
    assert event["exception"]["values"][-1]["type"] == "RuntimeError"
    everything = b"".join(item.body for item in received).decode()
    for secret in (PASSWORD, alice.token, alice.token.rsplit(".", 1)[1], csrf, alice.tokens["refresh_token"]):
        assert secret not in everything


async def test_without_a_dsn_nothing_is_reported(api: Api, sink: HttpSink) -> None:
    api.app.state.container.store._reader.shutdown()

    async with crashing_client(api) as client:
        response = await client.post("/api/auth/login", json={"username": "someone", "password": PASSWORD})

    assert response.status_code == 500
    assert not sentry_sdk.is_initialized()


def test_reports_lose_bodies_cookies_and_anything_shaped_like_a_credential() -> None:
    token = forge()
    event = {
        "message": f"failed for Bearer {token}",
        "request": {
            "url": "http://x/api",
            "data": {"password": PASSWORD},
            "cookies": {"a": "b"},
            "headers": {},
        },
        "extra": {
            "seen": [f"token was {token}", 7],
            "note": "bearer: opaque-access-value",
            "query": "refresh_token=opaque-refresh-value&x=1",
        },
    }

    scrubbed = scrub(event, None)

    text = json.dumps(scrubbed)
    assert token not in text
    assert token.rsplit(".", 1)[1] not in text
    assert PASSWORD not in text
    assert "opaque-access-value" not in text
    assert "opaque-refresh-value" not in text
    assert scrubbed["extra"]["query"] == f"{REDACTED}&x=1"
    assert scrubbed["request"] == {"url": "http://x/api"}
    assert scrubbed["extra"]["seen"] == [f"token was {REDACTED}", 7]
