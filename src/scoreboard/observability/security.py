"""Security events: one stream an intrusion-detection or SIEM system can consume.

Every event is one JSON log line from the logger `scoreboard.security` (its `logger` field says so,
whatever the log format) and one increment of `scoreboard_security_events_total{event}`. The
request's `request_id`, `client_ip` and authenticated `user_id` are added from the log context. Names and fields are a
contract (docs/operations.md lists them): add new ones, never rename.

    security_event(metrics, "login_failed", username="alice")
"""

from __future__ import annotations

from typing import Final

from scoreboard.observability.logging import get_logger
from scoreboard.observability.metrics import Metrics

LOGGER: Final = "scoreboard.security"
# On every event (request_id, client_ip and the authenticated user_id when there is a request).
COMMON_FIELDS: Final = frozenset(
    {"event", "logger", "level", "timestamp", "request_id", "client_ip", "user_id"}
)
# event name -> the fields it carries besides the common ones
EVENTS: Final[dict[str, tuple[str, ...]]] = {
    "login_failed": ("username",),
    "token_rejected": ("reason", "user_id"),
    "refresh_reused": ("user_id", "family_id"),
    "forbidden": ("reason", "user_id", "target_user_id", "action_id"),
    "rate_limited": ("limit", "subject"),
    "banned": ("user_id", "actor_id", "reason"),
    "unbanned": ("user_id", "actor_id"),
    "admin_action": ("actor_id", "action", "target"),
}
_MAX_FIELD = 128

log = get_logger(LOGGER)


def security_event(metrics: Metrics, name: str, **fields: str | int | None) -> None:
    """Log and count one security event. `name` must be one of EVENTS; strings are cut to 128
    characters (a username field is attacker-controlled)."""
    if name not in EVENTS:
        raise ValueError(f"unknown security event {name!r}: add it to EVENTS and docs/operations.md")
    metrics.security_events.labels(name).inc()
    clipped = {k: v[:_MAX_FIELD] if isinstance(v, str) else v for k, v in fields.items()}
    log.warning("security." + name, logger=LOGGER, **clipped)
