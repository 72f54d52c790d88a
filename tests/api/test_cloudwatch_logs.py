"""SCOREBOARD_LOG_FORMAT=cloudwatch: JSON lines, with key metrics in CloudWatch Embedded Metric Format."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable
from typing import Any

import pytest

from scoreboard.config import Settings
from scoreboard.observability.cloudwatch import METRICS, NAMESPACE
from tests.conftest import Api

UNITS = {"Milliseconds", "Count"}


def assert_valid_emf(line: dict[str, Any]) -> list[str]:
    """The line follows the EMF specification; the metric names it declares."""
    block = line["_aws"]
    assert isinstance(block["Timestamp"], int)
    assert block["Timestamp"] > 1_600_000_000_000  # milliseconds since the epoch
    declared = []
    for directive in block["CloudWatchMetrics"]:
        assert directive["Namespace"] == NAMESPACE
        for dimension_set in directive["Dimensions"]:
            assert 1 <= len(dimension_set) <= 30
            for dimension in dimension_set:
                assert isinstance(line[dimension], str), (dimension, line)  # dimensions are strings
        for entry in directive["Metrics"]:
            assert entry["Unit"] in UNITS
            assert isinstance(line[entry["Name"]], int | float), (entry, line)  # a member, a number
            declared.append(entry["Name"])
    return declared


async def test_cloudwatch_lines_embed_request_update_and_security_metrics(
    make_api: Callable[..., Any], settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    api: Api = await make_api(settings, log_format="cloudwatch")
    alice = await api.user()
    await api.update(alice, await api.ticket(alice))
    await api.http.post("/api/score/update", json={}, headers={"Authorization": "Bearer nope"})

    lines = [json.loads(line) for line in stderr.getvalue().splitlines()]

    assert all("event" in line and "timestamp" in line and "level" in line for line in lines)
    with_metrics = {line["event"] + "/" + line.get("outcome", ""): line for line in lines if "_aws" in line}
    applied = with_metrics["http.request/applied"]
    assert sorted(assert_valid_emf(applied)) == ["duration_ms", "requests", "score_updates"]
    assert applied["outcome"] == "applied"
    assert applied["route"] == "/api/score/update"
    assert applied["status_class"] == "2xx"
    refused = with_metrics["http.request/unauthenticated"]
    assert refused["status_class"] == "4xx"
    security = with_metrics["security.token_rejected/"]
    assert assert_valid_emf(security) == ["security_events"]
    declared = {name for line in with_metrics.values() for name in assert_valid_emf(line)}
    assert declared == set(METRICS)
    assert all("_aws" not in line for line in lines if line["event"] in {"app.started", "user.registered"})
