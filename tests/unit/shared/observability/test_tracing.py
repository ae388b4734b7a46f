"""W3C trace context: parsing, the correlation id as the trace, binding to logs and to
outgoing calls, span export when configured."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared.contracts import TickerUpdated, new_message
from shared.messaging._outbox import message_headers
from shared.observability.tracing import (
    TraceContext,
    configure_tracing,
    correlation_from_traceparent,
    current_traceparent,
    disable_tracing,
    parse_traceparent,
    span,
    traceparent_for,
    tracing_enabled,
    use_trace,
)

VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_parse_when_valid_then_fields() -> None:
    context = parse_traceparent(VALID)
    assert context == TraceContext("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", True)
    assert context is not None
    assert context.traceparent == VALID
    assert parse_traceparent(VALID.encode()) == context
    assert parse_traceparent(VALID[:-2] + "00") == TraceContext(
        context.trace_id, context.span_id, False
    )


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "garbage",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # version ff
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # zero trace
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # zero span
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  # upper case
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",  # short trace
    ],
)
def test_parse_when_malformed_then_none(value: str | None) -> None:
    assert parse_traceparent(value) is None


@given(st.text(max_size=80) | st.binary(max_size=80))
def test_parse_when_anything_then_context_or_none(value: str | bytes) -> None:
    context = parse_traceparent(value)
    assert context is None or parse_traceparent(context.traceparent) == context


def test_traceparent_when_message_then_correlation_is_the_trace() -> None:
    correlation, message = uuid.uuid4(), uuid.uuid4()
    context = parse_traceparent(traceparent_for(correlation, message))
    assert context is not None
    assert context.trace_id == correlation.hex
    assert context.span_id == message.hex[:16]
    assert correlation_from_traceparent(traceparent_for(correlation, message)) == correlation
    assert correlation_from_traceparent("nonsense") is None


def test_outbox_headers_when_message_then_traceparent_of_its_correlation() -> None:
    envelope = new_message(
        TickerUpdated(symbol="BTC_USDT", at="2026-01-01T00:00:00Z"), user_id=None
    )
    headers = message_headers(envelope)
    assert headers["traceparent"] == traceparent_for(envelope.correlation_id, envelope.id)


def test_use_trace_when_inside_then_current_and_bound_to_logs() -> None:
    context = TraceContext.of(uuid.uuid4(), uuid.uuid4())
    assert current_traceparent() is None
    with use_trace(context):
        assert current_traceparent() == context.traceparent
        bound = structlog.contextvars.get_contextvars()
        assert bound["trace_id"] == context.trace_id
        assert bound["span_id"] == context.span_id
    assert current_traceparent() is None
    assert "trace_id" not in structlog.contextvars.get_contextvars()
    with use_trace(None):
        assert current_traceparent() is None


def test_tracing_enabled_when_endpoint_set_and_not_disabled() -> None:
    assert not tracing_enabled({})
    assert tracing_enabled({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    assert tracing_enabled({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318"})
    assert not tracing_enabled(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SDK_DISABLED": "true"}
    )


@pytest.fixture
def exported() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    assert configure_tracing("test-service", exporter=exporter)
    yield exporter
    disable_tracing()


def test_span_when_configured_then_child_of_the_message(exported: InMemorySpanExporter) -> None:
    context = TraceContext.of(uuid.uuid4(), uuid.uuid4())
    with span("consume orders.commands", context, message_type="PlaceOrder"):
        pass
    [recorded] = exported.get_finished_spans()
    assert recorded.name == "consume orders.commands"
    assert format(recorded.context.trace_id, "032x") == context.trace_id
    assert recorded.parent is not None
    assert format(recorded.parent.span_id, "016x") == context.span_id
    assert recorded.attributes is not None
    assert recorded.attributes["message_type"] == "PlaceOrder"
    assert recorded.resource.attributes["service.name"] == "test-service"


def test_span_when_export_switched_off_then_nothing_recorded() -> None:
    exporter = InMemorySpanExporter()
    assert configure_tracing("svc", exporter=exporter)
    disable_tracing()
    with span("nothing", TraceContext.of(uuid.uuid4(), uuid.uuid4())):
        pass
    assert exporter.get_finished_spans() == ()
