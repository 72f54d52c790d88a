"""How scoreboard runs uvicorn: the options `serve` and `demo` share.

permessage-deflate is off: a board frame is about 1 KB, and compressing it costs CPU and a
compression context (tens of KiB) per connection, per message — it would also stop the hub from
writing one pre-built frame to every socket (`realtime/direct.py`).
"""

from __future__ import annotations

from typing import Any

from scoreboard.config import Settings

WS_MAX_SIZE = 64 * 1024

UVICORN_OPTIONS: dict[str, Any] = {
    "access_log": False,
    "log_level": "warning",
    "lifespan": "on",
    "proxy_headers": False,
    "ws_max_size": WS_MAX_SIZE,
    "ws_per_message_deflate": False,
    # On a stop signal the hub ends subscribed SSE streams and closes WebSockets with 1001
    # (realtime/farewell.py); a stream that is not subscribed would keep uvicorn waiting forever, so
    # whatever is still open after this many seconds is cancelled.
    "timeout_graceful_shutdown": 3,
}


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """UVICORN_OPTIONS with the WebSocket ping settings and the proxies whose `X-Forwarded-For` /
    `X-Forwarded-Proto` are believed.

    Only peers listed in SCOREBOARD_TRUSTED_PROXIES (addresses or networks) may tell us the client's
    address; from anyone else the headers are ignored, so per-address limits cannot be dodged by
    sending a made-up `X-Forwarded-For`."""
    options = {
        **UVICORN_OPTIONS,
        "ws_ping_interval": settings.ws_ping_interval_seconds,
        "ws_ping_timeout": settings.ws_ping_timeout_seconds,
    }
    if settings.trusted_proxies:
        options.update(proxy_headers=True, forwarded_allow_ips=",".join(settings.trusted_proxies))
    return options
