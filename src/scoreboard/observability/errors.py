"""Error reports to Sentry (sentry-sdk) when SCOREBOARD_SENTRY_DSN is set; nothing at all otherwise.

Only what the service itself calls a crash is reported (`api/problems.py` answers it with a 500
`internal_error`), tagged with the request id, route and method; no integration patches the web
stack, so the hot path pays nothing. Reports never carry a secret: frame locals are not sent (tokens
and passwords live there), known secret keys are scrubbed at any depth, and anything shaped like a
JWT or a `Bearer` credential is cut from every string before the event leaves the process.
"""

from __future__ import annotations

import re
from typing import Any

import structlog

from scoreboard import __version__
from scoreboard.config import Settings

_SECRET_KEYS = [
    "access_token",
    "refresh_token",
    "x-csrf-token",
    "x_csrf_token",
    "jwt",
    "bearer",
    "new_password",
]
_SECRET_TEXT = re.compile(
    r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"  # a JWT
    r"|(?i:bearer)[\s:=]+\S+"  # an Authorization value
    # name=value or "name": "value" for a secret's name (a query string, a repr, a message)
    r"|(?i:(?:access|refresh|csrf)_token|password|cookie)[\"']?\s*[:=]\s*[\"']?[^\s\"'&,;}]+"
)
REDACTED = "[redacted]"


def setup_errors(settings: Settings) -> bool:
    """Start reporting to Sentry if a DSN is configured; whether it was."""
    if not settings.sentry_dsn:
        return False
    import sentry_sdk
    from sentry_sdk.scrubber import DEFAULT_DENYLIST, EventScrubber

    sentry_sdk.init(
        dsn=settings.sentry_dsn,
        release=f"scoreboard@{__version__}",
        environment=settings.environment,
        default_integrations=False,
        auto_enabling_integrations=False,
        include_local_variables=False,
        send_client_reports=False,
        event_scrubber=EventScrubber(denylist=DEFAULT_DENYLIST + _SECRET_KEYS, recursive=True),
        before_send=scrub,
    )
    return True


def report_crash(error: BaseException, route: str, method: str) -> None:
    """Send an unexpected exception to Sentry with the request's id (no-op without a DSN)."""
    import sentry_sdk

    if not sentry_sdk.is_initialized():
        return
    with sentry_sdk.new_scope() as scope:
        request_id = structlog.contextvars.get_contextvars().get("request_id")
        if request_id:
            scope.set_tag("request_id", request_id)
        scope.set_tag("route", route)
        scope.set_tag("method", method)
        sentry_sdk.capture_exception(error)


def stop_errors() -> None:
    """Send what is queued and stop reporting (the app is stopping)."""
    import sentry_sdk

    sentry_sdk.get_client().close(timeout=2.0)


def scrub(event: Any, _hint: Any) -> Any:
    """before_send: drop request bodies and cookies, and cut secret-shaped text from every string."""
    request = event.get("request")
    if isinstance(request, dict):
        for key in ("data", "cookies", "headers", "query_string"):
            request.pop(key, None)
    return _cut(event)


def _cut(value: Any) -> Any:
    if isinstance(value, str):
        return _SECRET_TEXT.sub(REDACTED, value)
    if isinstance(value, dict):
        return {key: _cut(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_cut(item) for item in value]
    return value
