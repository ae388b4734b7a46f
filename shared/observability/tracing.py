"""W3C trace context across Kafka and HTTP, and OpenTelemetry export when configured.

A command's ``correlation_id`` (a UUID, 128 bits) IS its trace id: every message caused
by it carries the same correlation id, so every hop of one order is one trace without
any state. A message's span id is the first 64 bits of its message id. So:

- every message the outbox publishes has a ``traceparent`` header
  (`traceparent_for(envelope)`), and consumers bind ``trace_id`` / ``span_id`` to their
  log lines (`use_trace`);
- HTTP calls made while handling a message (the OPEX client) send the current
  ``traceparent`` (`current_traceparent`);
- an HTTP entry point may take a caller's ``traceparent`` as the correlation id of the
  command it creates (`correlation_from_traceparent`).

Export: when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``)
is set and ``OTEL_SDK_DISABLED`` is not true, `configure_tracing(service)` installs an
OpenTelemetry tracer provider with a batch OTLP/HTTP exporter, and `span(...)` records
spans whose parent is the message's trace context. Otherwise `span` costs one check.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import structlog

__all__ = [
    "TraceContext",
    "configure_tracing",
    "correlation_from_traceparent",
    "current_traceparent",
    "parse_traceparent",
    "span",
    "traceparent_for",
    "tracing_enabled",
    "use_trace",
]

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_current: contextvars.ContextVar[TraceContext | None] = contextvars.ContextVar(
    "opexbridge_trace", default=None
)
_tracer: Any = None


@dataclass(frozen=True, slots=True)
class TraceContext:
    trace_id: str
    """32 lower-case hex digits, not all zero."""
    span_id: str
    """16 lower-case hex digits, not all zero."""
    sampled: bool = True

    @property
    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{'01' if self.sampled else '00'}"

    @classmethod
    def of(cls, correlation_id: UUID, message_id: UUID) -> TraceContext:
        span = message_id.hex[:16]
        return cls(correlation_id.hex, span if span.strip("0") else "0" * 15 + "1")


def parse_traceparent(value: str | bytes | None) -> TraceContext | None:
    """A W3C ``traceparent`` value, or None when it is missing or malformed (version
    ff, an all-zero trace or span id, upper-case hex: all refused, as the spec says)."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    match = _TRACEPARENT.match(value.strip())
    if match is None:
        return None
    version, trace_id, span_id, flags = match.groups()
    if version == "ff" or not trace_id.strip("0") or not span_id.strip("0"):
        return None
    return TraceContext(trace_id, span_id, bool(int(flags, 16) & 1))


def traceparent_for(correlation_id: UUID, message_id: UUID) -> str:
    """The ``traceparent`` of a message: its correlation id as the trace."""
    return TraceContext.of(correlation_id, message_id).traceparent


def correlation_from_traceparent(value: str | None) -> UUID | None:
    """The correlation id a caller's ``traceparent`` asks for (its trace id)."""
    context = parse_traceparent(value)
    return UUID(hex=context.trace_id) if context is not None else None


def current_traceparent() -> str | None:
    """The trace of what this task is handling, to send on outgoing HTTP calls."""
    context = _current.get()
    return context.traceparent if context is not None else None


@contextlib.contextmanager
def use_trace(context: TraceContext | None) -> Iterator[None]:
    """Make ``context`` current (outgoing calls carry it) and bind ``trace_id`` and
    ``span_id`` to every log line inside."""
    if context is None:
        yield
        return
    token = _current.set(context)
    try:
        with structlog.contextvars.bound_contextvars(
            trace_id=context.trace_id, span_id=context.span_id
        ):
            yield
    finally:
        _current.reset(token)


def tracing_enabled(env: Mapping[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    if env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    return bool(
        env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def configure_tracing(service: str, *, exporter: Any = None) -> bool:
    """Install OpenTelemetry export for ``service`` when the environment asks for it
    (or an ``exporter`` is given, for tests). True when spans are now recorded."""
    global _tracer
    if exporter is None and not tracing_enabled():
        return False
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    else:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    _tracer = provider.get_tracer("opexbridge")
    return True


def disable_tracing() -> None:
    """Stop recording spans (tests)."""
    global _tracer
    _tracer = None


@contextlib.contextmanager
def span(name: str, context: TraceContext | None, **attributes: str | int) -> Iterator[None]:
    """A span named ``name`` in ``context``'s trace (its parent is the message's span);
    nothing when export is off or there is no context."""
    if _tracer is None or context is None:
        yield
        return
    from opentelemetry import trace

    parent = trace.set_span_in_context(
        trace.NonRecordingSpan(
            trace.SpanContext(
                trace_id=int(context.trace_id, 16),
                span_id=int(context.span_id, 16),
                is_remote=True,
                trace_flags=trace.TraceFlags(0x01 if context.sampled else 0x00),
            )
        )
    )
    with _tracer.start_as_current_span(name, context=parent, attributes=attributes):
        yield
