"""CloudWatch Embedded Metric Format (EMF) on the log lines that carry key metrics.

With SCOREBOARD_LOG_FORMAT=cloudwatch each such line keeps its JSON fields and gains an `_aws`
block naming some of them as metrics, so CloudWatch Logs extracts the metrics with no agent:

- every request line (`http.request`): `duration_ms` by `route`, and `requests` (1) by `status_class`;
- every score update's request line: `score_updates` (1) by `outcome`;
- every security event (`security.*`): `security_events` (1) by `event`.

https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html
"""

from __future__ import annotations

import time
from collections.abc import MutableMapping
from typing import Any, Final

NAMESPACE: Final = "Scoreboard"


def _directive(dimension: str, metric: str, unit: str) -> dict[str, Any]:
    return {"Namespace": NAMESPACE, "Dimensions": [[dimension]], "Metrics": [{"Name": metric, "Unit": unit}]}


_LATENCY = _directive("route", "duration_ms", "Milliseconds")
_REQUESTS = _directive("status_class", "requests", "Count")
_UPDATES = _directive("outcome", "score_updates", "Count")
_SECURITY = _directive("event", "security_events", "Count")
# Every metric the app can emit, and its dimension: what the CloudWatch alarms may name.
METRICS: Final = {
    directive["Metrics"][0]["Name"]: directive["Dimensions"][0][0]
    for directive in (_LATENCY, _REQUESTS, _UPDATES, _SECURITY)
}


def embed_metrics(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: add the EMF block to the lines that carry metrics."""
    name = event.get("event")
    if name == "http.request":
        event["status_class"] = f"{str(event.get('status', 0))[:1]}xx"
        event["requests"] = 1
        directives = [_LATENCY, _REQUESTS]
        if "outcome" in event:
            event["score_updates"] = 1
            directives.append(_UPDATES)
    elif isinstance(name, str) and name.startswith("security."):
        event["security_events"] = 1
        directives = [_SECURITY]
    else:
        return event
    event["_aws"] = {"Timestamp": int(time.time() * 1000), "CloudWatchMetrics": directives}
    return event
