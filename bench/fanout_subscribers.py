"""bench/fanout.py's subscriber side: processes that each hold a share of the WebSocket subscribers,
timestamp every message they receive and report it, and the check of what every subscriber saw.

Subscriber i of the run (over all processes) connects to URL i mod len(urls), so with two instances
each gets half the subscribers from every process.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import re
import signal
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection as Pipe
from typing import Any

from fanout_servers import WS_MAX_SIZE, cpu_seconds
from score_updates import BenchError

UPDATE, SNAPSHOT, OTHER = 0, 1, 2
_SEQ = re.compile(r'"epoch":(-?\d+),"seq":(\d+)')

Record = tuple[int, list[tuple[int, int, int]], "str | None", int]  # snapshot seq, events, closed, instance


def now_ns() -> int:
    return time.perf_counter_ns()


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


# Subscriber processes: each opens its share of the connections and records every arrival.


@dataclass
class Subscriber:
    """One WebSocket connection: the seq of its snapshot and every message after it, timestamped."""

    ws: Any
    snapshot_seq: int
    events: list[tuple[int, int, int]] = field(default_factory=list)  # (kind, seq, arrival ns)
    latest: int = 0
    target: int | None = None
    reached: asyncio.Event = field(default_factory=asyncio.Event)
    closed: str | None = None
    update_bytes: int = 0
    instance: int = 0  # which of the servers' URLs it is connected to

    async def receive(self) -> None:
        from websockets.exceptions import ConnectionClosed

        events, reached = self.events, self.reached
        try:
            async for message in self.ws:
                arrived = now_ns()
                kind, seq = classify(message)
                events.append((kind, seq, arrived))
                if kind == UPDATE and not self.update_bytes:
                    self.update_bytes = len(message.encode() if isinstance(message, str) else message)
                if seq > self.latest:
                    self.latest = seq
                if self.target is not None and self.latest >= self.target:
                    reached.set()
        except ConnectionClosed as closed:
            self.closed = f"{closed.rcvd.code if closed.rcvd else 'no close frame'}"
        finally:
            reached.set()  # nothing more will come: do not make the process wait for it


def classify(message: str | bytes) -> tuple[int, int]:
    """(kind, seq) of a server message, cheaply: the encoder writes `type` first, then epoch, seq."""
    text = message if isinstance(message, str) else message.decode()
    if text.startswith('{"type":"update"'):
        kind = UPDATE
    elif text.startswith('{"type":"snapshot"'):
        kind = SNAPSHOT
    else:
        kind = UPDATE if '"type":"update"' in text else SNAPSHOT if '"type":"snapshot"' in text else OTHER
    found = _SEQ.search(text)
    return kind, int(found.group(2)) if found else -1


async def open_subscriber(url: str, compression: str | None, timeout: float) -> tuple[Subscriber, int]:
    from websockets.asyncio.client import connect

    ws = await connect(
        url,
        compression=compression,
        open_timeout=timeout,
        ping_interval=None,  # the server pings; the client only answers
        close_timeout=2,
        max_size=WS_MAX_SIZE,
    )
    try:
        await asyncio.wait_for(ws.send('{"type":"subscribe","channel":"scoreboard_updates"}'), timeout)
        first = await asyncio.wait_for(ws.recv(), timeout)
    except BaseException:
        await ws.close()
        raise
    kind, seq = classify(first)
    if kind != SNAPSHOT:
        await ws.close()
        raise BenchError(f"the first message was not a snapshot: {str(first)[:200]}")
    return Subscriber(ws, seq, latest=seq), len(first.encode() if isinstance(first, str) else first)


async def connect_all(
    urls: Sequence[str], first: int, count: int, batch: int, compression: str | None
) -> tuple[list[Subscriber], Counter[str], int]:
    """Subscribers first … first + count - 1 of the run, `batch` at a time, subscriber i on
    urls[i mod len(urls)]; (the subscribers, why the others failed, the size of a snapshot)."""
    subscribers: list[Subscriber] = []
    failures: Counter[str] = Counter()
    snapshot_bytes = 0
    for start in range(first, first + count, batch):
        indexes = range(start, min(start + batch, first + count))
        results = await asyncio.gather(
            *(open_subscriber(urls[i % len(urls)], compression, 10.0) for i in indexes),
            return_exceptions=True,
        )
        for i, result in zip(indexes, results, strict=True):
            if isinstance(result, BaseException):
                failures[f"{type(result).__name__}: {result}"[:200]] += 1
            else:
                result[0].instance = i % len(urls)
                subscribers.append(result[0])
                snapshot_bytes = result[1]
    return subscribers, failures, snapshot_bytes


async def subscriber_main(
    pipe: Pipe, urls: Sequence[str], first: int, count: int, batch: int, compression: str | None
) -> None:
    started = time.perf_counter()
    subscribers, failures, snapshot_bytes = await connect_all(urls, first, count, batch, compression)
    tasks = [asyncio.create_task(s.receive()) for s in subscribers]
    pipe.send(
        (
            "ready",
            {
                "connected": len(subscribers),
                "per_instance": [sum(s.instance == i for s in subscribers) for i in range(len(urls))],
                "failures": dict(failures),
                "snapshot_seqs": sorted({s.snapshot_seq for s in subscribers}),
                "snapshot_bytes": snapshot_bytes,
                "connect_s": round(time.perf_counter() - started, 3),
            },
        )
    )
    _, target, timeout = await next_command(pipe, "expect")
    for s in subscribers:
        s.target = target
        if s.latest >= target or s.closed is not None:
            s.reached.set()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*(s.reached.wait() for s in subscribers)), timeout)
    timed_out = any(s.latest < target and s.closed is None for s in subscribers)
    pipe.send(("reached", timed_out))  # first, so that the parent reads our CPU time before the report
    await next_command(pipe, "report")
    pipe.send(
        (
            "done",
            {
                "timed_out": timed_out,
                "update_bytes": max((s.update_bytes for s in subscribers), default=0),
                "subscribers": [(s.snapshot_seq, s.events, s.closed, s.instance) for s in subscribers],
            },
        )
    )
    await next_command(pipe, "close")  # stay alive until the parent is done
    for s in subscribers:
        s.ws.transport.abort()  # no closing handshakes to time: the measurement is over
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


class Abandoned(Exception):
    """The parent stopped the run early (it failed or hit its deadline)."""


async def next_command(pipe: Pipe, expected: str) -> tuple[Any, ...]:
    message: tuple[Any, ...] = await asyncio.to_thread(pipe.recv)
    if message[0] != expected:
        if message[0] == "close":
            raise Abandoned
        raise BenchError(f"the parent sent {message[0]!r} where {expected!r} was due")
    return message


def subscriber_process(
    pipe: Pipe, urls: Sequence[str], first: int, count: int, batch: int, compression: str | None
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        try:
            runner.run(subscriber_main(pipe, urls, first, count, batch, compression))
        except (EOFError, BrokenPipeError, Abandoned):
            return  # the parent is gone or gave up: the connections go with the process


class Subscribers:
    """--processes subscriber processes sharing --subscribers connections to the servers' URLs."""

    def __init__(
        self, urls: Sequence[str], total: int, processes: int, batch: int, compression: str | None
    ) -> None:
        context = multiprocessing.get_context("spawn")
        self.pipes: list[Pipe] = []
        self.processes: list[Any] = []
        shares = [total // processes + (1 if i < total % processes else 0) for i in range(processes)]
        for i, share in enumerate(shares):
            parent, child = context.Pipe()
            process = context.Process(
                target=subscriber_process,
                args=(child, list(urls), sum(shares[:i]), share, batch, compression),
                daemon=True,
            )
            process.start()
            child.close()
            self.pipes.append(parent)
            self.processes.append(process)

    def receive_all(self, expected: str, deadline: float) -> list[dict[str, Any]]:
        answers = []
        for pipe, process in zip(self.pipes, self.processes, strict=True):
            if not pipe.poll(max(0.0, deadline - time.monotonic())):
                raise BenchError(f"a subscriber process did not answer {expected!r} before the deadline")
            try:
                kind, payload = pipe.recv()
            except EOFError:
                raise BenchError(f"subscriber process {process.pid} exited ({process.exitcode})") from None
            assert kind == expected, kind
            answers.append(payload)
        return answers

    def send_all(self, message: tuple[Any, ...]) -> None:
        for pipe in self.pipes:
            pipe.send(message)

    def cpu_seconds(self) -> float:
        return sum(cpu_seconds(p.pid) for p in self.processes)

    def stop(self) -> None:
        for pipe in self.pipes:
            with contextlib.suppress(OSError):
                pipe.send(("close",))
        for process in self.processes:
            process.join(timeout=5)
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)
        for pipe in self.pipes:
            pipe.close()


# Analysis.


@dataclass
class Check:
    subscribers: int = 0
    complete: int = 0  # got every seq, as an update or covered by a later snapshot
    missing: int = 0  # gaps: seqs skipped without a snapshot in their place, over all subscribers
    repeated: int = 0  # an update with the seq received just before it, again
    out_of_order: int = 0  # a seq older than one already received (other than a repeat)
    conflated: int = 0  # updates replaced by a snapshot (allowed under overload)
    snapshots: int = 0  # snapshots after the first
    other: int = 0  # messages neither update nor snapshot (errors)
    closed: Counter[str] = field(default_factory=Counter)
    # each subscriber's seqs of the run as they arrived: all the same when every subscriber saw one order
    sequences: Counter[tuple[int, ...]] = field(default_factory=Counter)

    @property
    def same_sequence(self) -> bool:
        return len(self.sequences) <= 1

    @property
    def passed(self) -> bool:
        in_order = self.missing == 0 and self.repeated == 0 and self.out_of_order == 0
        # conflation is allowed, and gives the subscribers concerned a shorter sequence
        return in_order and self.complete == self.subscribers and (self.same_sequence or self.conflated > 0)

    def one(self, kind: int, seq: int, expected: int) -> int:
        """Count one update or snapshot for a subscriber expecting seq `expected`; the seq it expects next."""
        if kind == SNAPSHOT:
            self.snapshots += 1
            if seq >= expected:
                self.conflated += seq - expected + 1
                return seq + 1
            if seq < expected - 1:
                self.out_of_order += 1
            return expected
        if seq >= expected:
            self.missing += seq - expected
            return seq + 1
        if seq == expected - 1:
            self.repeated += 1
        else:
            self.out_of_order += 1
        return expected


def check_and_time(
    records: Sequence[Record], first: int, last: int, instances: int = 1
) -> tuple[Check, dict[int, list[list[int]]]]:
    """Order checks per subscriber; per seq and instance, when each subscriber's board first reflected
    it (the first message with that seq or a newer one: the update, or a snapshot that replaced it)."""
    check = Check(subscribers=len(records))
    arrivals: dict[int, list[list[int]]] = {
        seq: [[] for _ in range(instances)] for seq in range(first, last + 1)
    }
    for snapshot_seq, events, closed, instance in records:
        expected = snapshot_seq + 1
        covered = snapshot_seq
        seen = []
        for kind, seq, arrived in events:
            if kind == OTHER:
                check.other += 1
                continue
            seen.append(seq)
            expected = check.one(kind, seq, expected)
            while covered < seq:
                covered += 1
                if covered in arrivals:
                    arrivals[covered][instance].append(arrived)
        check.sequences[tuple(seq for seq in seen if first <= seq <= last)] += 1
        if expected <= last:
            check.missing += last - expected + 1
        else:
            check.complete += 1
        if closed is not None:
            check.closed[closed] += 1
    return check, arrivals
