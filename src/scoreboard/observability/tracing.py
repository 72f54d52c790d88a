"""OpenTelemetry traces of the write path, exported over OTLP/HTTP when SCOREBOARD_OTEL_ENDPOINT is set.

Nothing is imported, wrapped or added when it is not set: the write path then runs exactly the code
it runs without tracing. When set, each HTTP request is a span (`HTTP <method> <route>`) whose
children are the write path's steps:

    auth.verify    the access token's signature and claims
    score.update   the whole redemption, parent of:
      score.redeem   the Store's one transaction (exactly-once)
      score.apply    the committed score applied to the leaderboard cache
      score.publish  a changed top 10 published to the broker

Needs the `otel` extra (`pip install 'scoreboard[otel]'`).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from scoreboard import __version__
from scoreboard.config import Settings, SettingsError

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Tracer

    from scoreboard.api.deps import Container

SPANS = ("auth.verify", "score.update", "score.redeem", "score.apply", "score.publish")


def setup_tracing(settings: Settings, container: Container) -> TracerProvider | None:
    """A tracer provider exporting to the configured endpoint, with the write path wrapped in
    spans; None (and nothing changed) when no endpoint is configured."""
    if not settings.otel_endpoint:
        return None
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        raise SettingsError(
            "SCOREBOARD_OTEL_ENDPOINT needs the OpenTelemetry packages: pip install 'scoreboard[otel]'"
        ) from None
    resource = Resource.create(
        {
            "service.name": "scoreboard",
            "service.version": __version__,
            "deployment.environment": settings.environment,
        }
    )
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=traces_url(settings.otel_endpoint)))
    )
    trace_write_path(container, provider.get_tracer("scoreboard"))
    return provider


def traces_url(endpoint: str) -> str:
    """The collector's base URL gets the standard OTLP/HTTP traces path; a full URL is kept."""
    if urlsplit(endpoint).path.strip("/"):
        return endpoint
    return endpoint.rstrip("/") + "/v1/traces"


def trace_write_path(container: Container, tracer: Tracer) -> None:
    scores = container.scores
    _wrap(container.tokens, "verify", "auth.verify", tracer)
    _wrap(scores, "update", "score.update", tracer)
    _wrap(container.store, "redeem", "score.redeem", tracer)
    _wrap(scores, "apply", "score.apply", tracer)
    _wrap(scores, "publish", "score.publish", tracer)


def _wrap(owner: object, attribute: str, name: str, tracer: Tracer) -> None:
    call: Callable[..., Any] = getattr(owner, attribute)
    if inspect.iscoroutinefunction(call):

        @functools.wraps(call)
        async def traced(*args: Any, **kwargs: Any) -> Any:
            with tracer.start_as_current_span(name):
                return await call(*args, **kwargs)

        setattr(owner, attribute, traced)
        return

    @functools.wraps(call)
    def traced_sync(*args: Any, **kwargs: Any) -> Any:
        with tracer.start_as_current_span(name):
            return call(*args, **kwargs)

    setattr(owner, attribute, traced_sync)


class TracedRequests:
    """ASGI middleware (added only when tracing is on): one parent span per HTTP request, named by
    method and route template once routing has chosen one."""

    def __init__(self, app: ASGIApp, provider: TracerProvider) -> None:
        self.app = app
        self._tracer = provider.get_tracer("scoreboard.http")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with self._tracer.start_as_current_span(f"HTTP {scope['method']}") as span:
            status = 500

            async def sending(message: Any) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            try:
                await self.app(scope, receive, sending)
            finally:
                route = getattr(scope.get("route"), "path", "unmatched")
                span.update_name(f"HTTP {scope['method']} {route}")
                span.set_attribute("http.route", route)
                span.set_attribute("http.response.status_code", status)
