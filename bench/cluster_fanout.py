"""The fan-out half of bench/cluster.py: subscriber processes holding many WebSocket connections,
recording when each connection receives each seq (CLOCK_MONOTONIC, comparable across processes)."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import ssl
import time
from multiprocessing.connection import Connection
from typing import Any

from websockets.asyncio.client import connect

SUBSCRIBE = json.dumps({"type": "subscribe", "channel": "scoreboard_updates"})
BATCH = 100  # connections opened at once


async def _hold(
    url: str, cafile: str | None, count: int, ready: Connection, stop: Connection
) -> dict[str, Any]:
    tls = ssl.create_default_context(cafile=cafile) if cafile else None
    arrivals: dict[int, list[int]] = {}  # seq -> arrival times (ns), one per connection
    sockets = []

    async def listen(ws: Any) -> None:
        async for raw in ws:
            message = json.loads(raw)
            arrivals.setdefault(message["seq"], []).append(time.perf_counter_ns())

    for start in range(0, count, BATCH):
        opened = await asyncio.gather(
            *(
                connect(url, ssl=tls, open_timeout=30, max_queue=None)
                for _ in range(min(BATCH, count - start))
            )
        )
        for ws in opened:
            await ws.send(SUBSCRIBE)
            await ws.recv()  # the snapshot
        sockets += opened
    listeners = [asyncio.create_task(listen(ws)) for ws in sockets]
    ready.send(len(sockets))
    while not stop.poll():
        await asyncio.sleep(0.05)
    for task in listeners:
        task.cancel()
    for ws in sockets:
        await ws.close()
    return {"arrivals": arrivals}


def _main(url: str, cafile: str | None, count: int, ready: Connection, stop: Connection) -> None:
    ready.send(asyncio.run(_hold(url, cafile, count, ready, stop)))


class Subscribers:
    """`total` connections to `url` spread over `processes` child processes."""

    def __init__(self, url: str, cafile: str | None, total: int, processes: int = 2) -> None:
        context = multiprocessing.get_context("spawn")
        self._pipes = []
        self._processes = []
        for index in range(processes):
            share = total // processes + (1 if index < total % processes else 0)
            parent_ready, child_ready = context.Pipe()
            parent_stop, child_stop = context.Pipe()
            process = context.Process(target=_main, args=(url, cafile, share, child_ready, child_stop))
            process.start()
            self._pipes.append((parent_ready, parent_stop))
            self._processes.append(process)

    def wait_ready(self, timeout: float = 120.0) -> int:
        return sum(int(ready.recv()) for ready, _ in self._pipes if ready.poll(timeout))

    def finish(self) -> dict[int, list[int]]:
        """Stop listening; every connection's arrival times by seq."""
        for _, stop in self._pipes:
            stop.send(True)
        merged: dict[int, list[int]] = {}
        for ready, _ in self._pipes:
            for seq, times in ready.recv()["arrivals"].items():
                merged.setdefault(int(seq), []).extend(times)
        for process in self._processes:
            process.join(timeout=30)
        return merged
