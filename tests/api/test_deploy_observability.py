"""deploy/observability: the dashboard, alert rules, CloudWatch alarms and stack file name only what
the running app really exposes, and promtool accepts the rules and their unit tests."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from scoreboard.api.middleware import SCORE_UPDATE_ROUTE
from scoreboard.config import PREFIX, Settings
from scoreboard.observability import cloudwatch
from scoreboard.observability.security import EVENTS
from tests.backends import unavailable
from tests.conftest import Api

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "observability"
SOURCE = ROOT / "src" / "scoreboard"
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
}
_PROMQL_WORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "le",
    "inf",
    "nan",
}


async def exposed_names(api: Api) -> set[str]:
    """Every sample name the app's /metrics can show (families without samples yet included)."""
    text = (await api.http.get("/metrics")).text
    names = set()
    for family in text_string_to_metric_families(text):
        names.update(family.name + suffix for suffix in _SUFFIXES.get(family.type, ("",)))
    return names


def metric_names_in(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (not functions, labels, keywords or durations)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)  # strings
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    expr = re.sub(r"\$\w+", "", expr)  # Grafana variables
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", expr):
        following = expr[match.end() :].lstrip()
        if following.startswith("(") or match.group().lower() in _PROMQL_WORDS:
            continue  # a function call or a keyword
        names.add(match.group())
    return names


def dashboard_exprs() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text("utf-8"))
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def test_the_dashboard_is_well_formed_for_grafana() -> None:
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text("utf-8"))
    panels = dashboard["panels"]
    ids = [panel["id"] for panel in panels]

    assert dashboard["uid"] == "scoreboard-overview"
    assert len(ids) == len(set(ids))
    assert [v["name"] for v in dashboard["templating"]["list"]] == ["datasource"]
    for panel in panels:
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"}
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}"
            refs = [target["refId"] for target in panel["targets"]]
            assert refs, panel["title"]
            assert len(refs) == len(set(refs)), panel["title"]


def alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load((DEPLOY / "prometheus-alerts.yml").read_text("utf-8"))
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_the_expression_parser_finds_metric_names_and_nothing_else() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le, route) (rate(x_bucket{route!~"/a|/b"}[5m]))) / y_total > 0.25'
    )

    assert metric_names_in(expr) == {"x_bucket", "y_total"}


async def test_the_dashboard_shows_only_metrics_the_app_exposes(api: Api) -> None:
    exposed = await exposed_names(api)
    exprs = dashboard_exprs()

    used = set().union(*(metric_names_in(expr) for expr in exprs))
    assert len(exprs) >= 25
    assert used, "no metric names found in the dashboard"
    assert used <= exposed, f"not exposed by the app: {sorted(used - exposed)}"
    # The list: each of these is on the dashboard.
    for needed in (
        "scoreboard_http_requests_total",
        "scoreboard_http_request_duration_seconds_bucket",
        "scoreboard_score_updates_total",
        "scoreboard_points_awarded_total",
        "scoreboard_top_changes_total",
        "scoreboard_broadcast_duration_seconds_bucket",
        "scoreboard_realtime_connections",
        "scoreboard_realtime_messages_sent_total",
        "scoreboard_realtime_slow_clients_total",
        "scoreboard_outbox_backlog_events",
        "scoreboard_outbox_oldest_event_age_seconds",
        "scoreboard_cache_rebuilds_total",
        "scoreboard_backend_call_duration_seconds_bucket",
        "scoreboard_backend_call_errors_total",
        "scoreboard_security_events_total",
        "process_resident_memory_bytes",
    ):
        assert needed in used, needed


async def test_the_alert_rules_use_only_exposed_metrics_and_link_their_runbook(api: Api) -> None:
    exposed = await exposed_names(api)
    runbook = (ROOT / "docs" / "operations.md").read_text("utf-8")
    rules = alert_rules()

    assert {rule["alert"] for rule in rules} >= {
        "ScoreboardHighErrorRate",
        "ScoreboardSlowRequests",
        "ScoreboardOutboxStuck",
        "ScoreboardWebSocketDropStorm",
        "ScoreboardNotReady",
        "ScoreboardCacheRebuildLoop",
    }
    for rule in rules:
        used = metric_names_in(rule["expr"])
        assert used, rule["alert"]
        assert used <= exposed, (rule["alert"], sorted(used - exposed))
        assert rule["labels"]["severity"] in {"page", "warn"}
        assert f"### {rule['alert']}" in runbook, f"docs/operations.md has no runbook for {rule['alert']}"


def promtool() -> str:
    """promtool from PATH or where .ci/run unpacks it; skip (CI: fail) without it."""
    found = shutil.which("promtool") or shutil.which(
        "promtool", path=str(ROOT / ".ci" / "tools" / "usr" / "bin")
    )
    if found is None:
        unavailable(
            "alert-rule tier needs promtool on PATH or in .ci/tools (Debian package `prometheus`; .ci/run fetches it)"
        )
    return found


@pytest.mark.parametrize(
    "args",
    [
        ("check", "rules", "prometheus-alerts.yml"),
        ("test", "rules", "prometheus-alerts.test.yml"),
        ("check", "config", "prometheus.yml"),
    ],
    ids=["check-rules", "test-rules", "check-config"],
)
def test_promtool_accepts_the_rules_their_unit_tests_and_the_scrape_config(args: tuple[str, ...]) -> None:
    result = subprocess.run(
        [promtool(), *args], cwd=DEPLOY, capture_output=True, text=True, timeout=60, check=False
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def logged_events() -> set[str]:
    """Event names the source logs (first argument of a log call), plus the security events."""
    names = set()
    for path in SOURCE.rglob("*.py"):
        names.update(re.findall(r'log\.\w+\(\s*"([a-z_.]+)"', path.read_text("utf-8")))
    return names | {f"security.{name}" for name in EVENTS}


def test_the_cloudwatch_alarms_name_metrics_the_app_emits() -> None:
    template = yaml.safe_load((DEPLOY / "cloudwatch-alarms.yml").read_text("utf-8"))
    resources = template["Resources"]
    events = logged_events()
    filtered = {}
    for resource in resources.values():
        if resource["Type"] == "AWS::Logs::MetricFilter":
            event = re.fullmatch(r'\{ \$\.event = "([a-z_.]+)" \}', resource["Properties"]["FilterPattern"])
            assert event, resource
            assert event.group(1) in events, f"no log line is named {event.group(1)}"
            for transform in resource["Properties"]["MetricTransformations"]:
                assert transform["MetricNamespace"] == cloudwatch.NAMESPACE
                filtered[transform["MetricName"]] = transform
    alarms = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::CloudWatch::Alarm"]
    metrics = [a for a in alarms if "MetricName" in a]
    metrics += [q["MetricStat"]["Metric"] for a in alarms for q in a.get("Metrics", []) if "MetricStat" in q]

    assert {a["AlarmName"] for a in alarms} >= {rule["alert"] for rule in alert_rules()} - {
        "ScoreboardBackendErrors"
    }
    for metric in metrics:
        assert metric["Namespace"] == cloudwatch.NAMESPACE
        name = metric["MetricName"]
        assert name in cloudwatch.METRICS or name in filtered, f"{name} is neither EMF nor a metric filter"
        for dimension in metric.get("Dimensions", []):
            assert dimension["Name"] == cloudwatch.METRICS[name]
            valid = {"route": {SCORE_UPDATE_ROUTE}, "outcome": {"error"}, "event": events}.get(
                dimension["Name"]
            )
            assert valid is None or dimension["Value"] in valid, dimension
    for alarm in alarms:
        assert alarm["AlarmActions"] == [{"Ref": "AlarmTopicArn"}]


def test_the_portainer_stack_runs_the_app_healthchecked_labelled_and_scraped() -> None:
    stack = yaml.safe_load((DEPLOY / "portainer-stack.yml").read_text("utf-8"))
    app = stack["services"]["scoreboard"]
    settings = {PREFIX + spec.name.upper() for spec in fields(Settings)}

    assert set(app["environment"]) <= settings, sorted(set(app["environment"]) - settings)
    assert app["command"][:2] == ["scoreboard", "serve"]
    port = app["command"][app["command"].index("--port") + 1]
    assert "/readyz" in " ".join(app["healthcheck"]["test"])
    assert app["labels"]["prometheus.io/scrape"] == "true"
    assert app["labels"]["prometheus.io/port"] == port
    assert app["labels"]["prometheus.io/path"] == "/metrics"
    for name, service in stack["services"].items():
        assert service["labels"]["com.scoreboard.stack"] == "scoreboard", name
        assert service["image"], name
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (DEPLOY / source).is_file(), f"{name} mounts a missing file {source}"
    scrape = yaml.safe_load((DEPLOY / "prometheus.yml").read_text("utf-8"))
    assert scrape["scrape_configs"][0]["static_configs"][0]["targets"] == [f"scoreboard:{port}"]
