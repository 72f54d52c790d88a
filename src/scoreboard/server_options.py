"""How scoreboard runs uvicorn: the options `serve` and `demo` share.

permessage-deflate is off: a board frame is about 1 KB, and compressing it costs CPU and a
compression context (tens of KiB) per connection, per message — it would also stop the hub from
writing one pre-built frame to every socket (`realtime/direct.py`).
"""

from __future__ import annotations

from typing import Any

WS_MAX_SIZE = 64 * 1024

UVICORN_OPTIONS: dict[str, Any] = {
    "access_log": False,
    "log_level": "warning",
    "lifespan": "on",
    "proxy_headers": True,
    "ws_max_size": WS_MAX_SIZE,
    "ws_per_message_deflate": False,
    # An SSE stream never finishes its response, so uvicorn would wait for it forever on shutdown
    # (WebSockets are closed with 1012 at once); after this many seconds the streams are cancelled.
    "timeout_graceful_shutdown": 3,
}
