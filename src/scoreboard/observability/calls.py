"""Latency and errors of every call through a backend port, measured at the adapter boundary.

Each coroutine method a port's Protocol declares is replaced, on the adapter instance, by a timed
wrapper bound to its pre-resolved histogram and counter children: one `perf_counter` pair and one
histogram observation per call, no label lookup, and nothing changes for the adapters themselves.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any

from scoreboard.adapters import Backends
from scoreboard.broker.base import Broker, ScoreEvents
from scoreboard.domain.errors import DomainError
from scoreboard.leaderboard.base import Leaderboard
from scoreboard.limiter.base import RateLimiter
from scoreboard.observability.metrics import Metrics
from scoreboard.revocations.base import Revocations
from scoreboard.store.base import Store

# Lifecycle calls are not traffic.
_SKIPPED = frozenset({"open", "close", "subscribe"})
PORTS: dict[str, tuple[type, ...]] = {
    "database": (Store,),
    "cache": (Leaderboard,),
    "broker": (Broker, ScoreEvents),
    "limiter": (RateLimiter,),
    "revocations": (Revocations,),
}


def instrument_backends(backends: Backends, metrics: Metrics) -> None:
    """Time the adapters that do I/O; the in-process (`memory`) ones have no latency worth a
    histogram and stay untouched."""
    adapters = {
        "database": backends.store,
        "cache": backends.board,
        "broker": backends.broker,
        "limiter": backends.limiter,
        "revocations": backends.revocations,
    }
    for backend, adapter in adapters.items():
        if not type(adapter).__module__.endswith(".memory"):
            instrument(adapter, backend, metrics)


def instrument(adapter: object, backend: str, metrics: Metrics) -> list[str]:
    """Time every call of `backend`'s port methods on `adapter`; the operations instrumented."""
    names = sorted(
        {
            name
            for port in PORTS[backend]
            for name, member in inspect.getmembers(port, inspect.iscoroutinefunction)
            if not name.startswith("_") and name not in _SKIPPED
        }
    )
    done = []
    for name in names:
        method = getattr(adapter, name, None)
        if method is None or not inspect.iscoroutinefunction(method):
            continue
        timer = metrics.backend_seconds.labels(backend, name)
        failures = metrics.backend_errors.labels(backend, name)
        setattr(adapter, name, _timed(method, timer.observe, failures.inc))
        done.append(name)
    return done


def _timed(
    call: Callable[..., Awaitable[Any]], observe: Callable[[float], None], fail: Callable[[], None]
) -> Callable[..., Awaitable[Any]]:
    clock = time.perf_counter

    @functools.wraps(call)
    async def timed(*args: Any, **kwargs: Any) -> Any:
        started = clock()
        try:
            return await call(*args, **kwargs)
        except DomainError:
            raise  # an answer (duplicate, not permitted...), not a failing backend
        except Exception:
            fail()
            raise
        finally:
            observe(clock() - started)

    return timed
