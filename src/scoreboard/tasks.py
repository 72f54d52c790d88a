"""Stopping a background task for sure.

`task.cancel()` asks once; if the task swallows that one cancellation — Python 3.11's
`asyncio.wait_for` does when its inner future finishes at the same moment (redis-py waits for
connections with it) — a plain `await task` waits for ever and the process never shuts down. So
the cancellation is asked again until the task has stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

ASK_AGAIN_SECONDS = 0.5


async def stop(task: asyncio.Task[Any]) -> None:
    """Cancel `task` and wait until it has ended (its outcome is not raised)."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=ASK_AGAIN_SECONDS)
    with contextlib.suppress(asyncio.CancelledError, Exception):
        task.result()
