"""Saying goodbye on shutdown: live-board clients get WebSocket close 1001 ("going away").

When the process is told to stop (SIGTERM from Kubernetes, systemd or `docker stop`; Ctrl-C), every
subscriber is closed with 1001 at once — before uvicorn ends whatever is left with 1012 — and SSE
streams end, so clients reconnect to another instance straight away and resume with `since`.
The server's own signal handler still runs: we only go first.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

from scoreboard.realtime.hub import Hub

SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextlib.contextmanager
def farewell_on_stop(hub: Hub) -> Iterator[None]:
    """While open, a stop signal first hangs up every subscriber of `hub`, then does what it did."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signals reach the main thread only (an app served by a test client in a thread)
        return
    loop = asyncio.get_running_loop()
    farewells: set[asyncio.Task[None]] = set()

    def say_goodbye() -> None:
        task = loop.create_task(hub.going_away())
        farewells.add(task)
        task.add_done_callback(farewells.discard)

    previous = {sig: signal.getsignal(sig) for sig in SIGNALS}

    def on_stop(signum: int, frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(say_goodbye)
        handler: Any = previous[signal.Signals(signum)]
        if callable(handler):
            handler(signum, frame)

    for sig in SIGNALS:
        signal.signal(sig, on_stop)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            if signal.getsignal(sig) is on_stop:
                signal.signal(sig, handler)
