"""OpenTelemetry: the write path's spans, nested under the request's span, and exported over OTLP/HTTP."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from scoreboard.config import Settings
from scoreboard.observability.tracing import SPANS, traces_url
from tests.conftest import Api
from tests.sinks import HttpSink


async def test_a_score_update_is_one_trace_of_the_write_path_exported_over_otlp(
    make_api: Callable[..., Any], settings: Settings
) -> None:
    with HttpSink() as collector:
        api: Api = await make_api(settings, otel_endpoint=f"http://127.0.0.1:{collector.port}")
        provider = api.app.state.tracer_provider
        memory = InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(memory))
        alice = await api.user()
        action_id = await api.ticket(alice)
        memory.clear()

        response = await api.update(alice, action_id)
        provider.force_flush()
        exported = collector.wait(1)

    assert response.status_code == 200
    spans = {span.name: span for span in memory.get_finished_spans()}
    assert set(spans) == {"HTTP POST /api/score/update", *SPANS}
    root = spans["HTTP POST /api/score/update"]
    assert root.attributes is not None
    assert root.attributes["http.response.status_code"] == 200
    assert {span.context.trace_id for span in spans.values()} == {root.context.trace_id}
    parent = {name: span.parent.span_id if span.parent else None for name, span in spans.items()}
    assert parent["auth.verify"] == root.context.span_id
    assert parent["score.update"] == root.context.span_id
    for step in ("score.redeem", "score.apply"):
        assert parent[step] == spans["score.update"].context.span_id
    assert parent["score.publish"] == spans["score.apply"].context.span_id
    assert any(item.path == "/v1/traces" for item in exported), "the OTLP exporter reached the collector"
    traces = next(item for item in exported if item.path == "/v1/traces")
    assert traces.headers["content-type"] == "application/x-protobuf"
    assert all(name.encode() in traces.body for name in SPANS)  # the span names, protobuf-encoded


async def test_without_an_endpoint_nothing_is_traced_or_wrapped(api: Api) -> None:
    container = api.app.state.container

    assert api.app.state.tracer_provider is None
    assert "update" not in vars(container.scores)  # the class's own method, unwrapped
    assert "verify" not in vars(container.tokens)


def test_the_collector_url_gets_the_traces_path_unless_it_has_one() -> None:
    assert traces_url("http://collector:4318") == "http://collector:4318/v1/traces"
    assert traces_url("http://collector:4318/") == "http://collector:4318/v1/traces"
    assert traces_url("https://x.example/otlp/v1/traces") == "https://x.example/otlp/v1/traces"
