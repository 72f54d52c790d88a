"""Every Prometheus metric of the service, declared once, named `scoreboard_<noun>_<unit>`.

Each app gets its own registry so that two apps in one process (tests) never collide. When
PROMETHEUS_MULTIPROC_DIR is set (`scoreboard serve --workers N` sets it), every worker writes its
samples to files there and /metrics answers with the sum over all workers (prometheus_client's
multiprocess mode); gauges say how their workers' values combine.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from scoreboard import __version__

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
        self.http_requests = Counter(
            "scoreboard_http_requests_total",
            "HTTP requests answered, by route template and status.",
            ["method", "route", "status"],
            registry=registry,
        )
        self.http_duration = Histogram(
            "scoreboard_http_request_duration_seconds",
            "Time to answer an HTTP request.",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.score_updates = Counter(
            "scoreboard_score_updates_total",
            "Score update attempts by outcome: applied, duplicate, overflow, forbidden, rate_limited,"
            " invalid, unauthenticated, unavailable, error.",
            ["outcome"],
            registry=registry,
        )
        self.points_awarded = Counter(
            "scoreboard_points_awarded_total", "Points added to scores.", registry=registry
        )
        self.top_changes = Counter(
            "scoreboard_top_changes_total",
            "Top-10 changes published (each took a new seq).",
            registry=registry,
        )
        self.actions_issued = Counter(
            "scoreboard_actions_issued_total",
            "Action tickets issued, by type.",
            ["type"],
            registry=registry,
        )
        self.logins = Counter(
            "scoreboard_logins_total", "Login attempts by outcome.", ["outcome"], registry=registry
        )
        self.admin_acts = Counter(
            "scoreboard_admin_acts_total",
            "Admin acts committed (ban, unban, score_correction).",
            ["action"],
            registry=registry,
        )
        self.tokens_rejected = Counter(
            "scoreboard_tokens_rejected_total",
            "Access tokens refused, by reason.",
            ["reason"],
            registry=registry,
        )
        self.jwks_fetches = Counter(
            "scoreboard_jwks_fetches_total",
            "Fetches of the external identity provider's key set, by outcome (fetched, failed).",
            ["outcome"],
            registry=registry,
        )
        self.rate_limited = Counter(
            "scoreboard_rate_limited_total",
            "Requests refused by a rate limit, by limit name.",
            ["limit"],
            registry=registry,
        )
        self.cache_apply_errors = Counter(
            "scoreboard_cache_apply_errors_total",
            "Committed score events the cache could not apply at once (the outbox relay retries).",
            registry=registry,
        )
        self.cache_rebuilds = Counter(
            "scoreboard_cache_rebuilds_total",
            "Leaderboard cache rebuilds from the Store.",
            registry=registry,
        )
        self.limiter_errors = Counter(
            "scoreboard_ratelimit_backend_errors_total",
            "Rate-limit checks admitted because the limiter's backend failed (fail open).",
            registry=registry,
        )
        self.revocation_errors = Counter(
            "scoreboard_revocation_backend_errors_total",
            "Revocation checks that could not reach their backend (the token was accepted).",
            registry=registry,
        )
        self.outbox_backlog = Gauge(
            "scoreboard_outbox_backlog_events",
            "Committed events not yet marked published.",
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.outbox_oldest_age = Gauge(
            "scoreboard_outbox_oldest_event_age_seconds",
            "Age of the oldest unpublished event the relay found overdue (0 when none is).",
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.backend_seconds = Histogram(
            "scoreboard_backend_call_duration_seconds",
            "Time of one call to a backend port (database, cache, broker, limiter, revocations).",
            ["backend", "operation"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.backend_errors = Counter(
            "scoreboard_backend_call_errors_total",
            "Backend calls that failed (expected refusals such as a duplicate action are not errors).",
            ["backend", "operation"],
            registry=registry,
        )
        self.backend_up = Gauge(
            "scoreboard_backend_up",
            "1 when the backend answered the last readiness check, 0 when it did not.",
            ["backend"],
            registry=registry,
            multiprocess_mode="livemin",
        )
        self.security_events = Counter(
            "scoreboard_security_events_total",
            "Security events (see docs/operations.md), by event name.",
            ["event"],
            registry=registry,
        )
        Gauge(
            "scoreboard_build_info",
            "Always 1; the running version as a label.",
            ["version"],
            registry=registry,
            multiprocess_mode="liveall",
        ).labels(__version__).set(1)
        self.store_batch_size = Histogram(
            "scoreboard_store_commit_batch_writes",
            "Writes that shared one database commit.",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
            registry=registry,
        )

        self.connections = Gauge(
            "scoreboard_realtime_connections",
            "Open real-time connections, by transport (ws, sse).",
            ["transport"],
            registry=registry,
            multiprocess_mode="livesum",
        )
        for transport in ("ws", "sse"):  # a 0 from an idle pod, so the autoscaler can average it
            self.connections.labels(transport)
        self.messages_sent = Counter(
            "scoreboard_realtime_messages_sent_total",
            "Frames written to real-time clients.",
            ["transport"],
            registry=registry,
        )
        self.slow_clients = Counter(
            "scoreboard_realtime_slow_clients_total",
            "Clients that fell behind: conflated (sent the latest snapshot instead of the backlog) or"
            " dropped (disconnected).",
            ["transport", "action"],
            registry=registry,
        )
        self.broadcast_seconds = Histogram(
            "scoreboard_broadcast_duration_seconds",
            "From a board change reaching this instance to its last local subscriber's send.",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.refused_connections = Counter(
            "scoreboard_realtime_refused_connections_total",
            "WebSocket handshakes refused, by reason (origin, unauthenticated, address_limit, total_limit).",
            ["reason"],
            registry=registry,
        )
        self.client_errors = Counter(
            "scoreboard_realtime_client_errors_total",
            "Bad client messages, by error code.",
            ["code"],
            registry=registry,
        )

    def render(self) -> bytes:
        folder = os.environ.get(MULTIPROC_ENV)
        if not folder:
            return generate_latest(self.registry)
        # Every worker's samples, summed; process metrics are those of the worker that answered.
        combined = CollectorRegistry()
        multiprocess.MultiProcessCollector(combined, path=folder)  # type: ignore[no-untyped-call]
        ProcessCollector(registry=combined)
        return generate_latest(combined)

    def process_exiting(self) -> None:
        """Drop this worker's live gauges from the multiprocess files (its counters stay counted)."""
        if os.environ.get(MULTIPROC_ENV):
            multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
