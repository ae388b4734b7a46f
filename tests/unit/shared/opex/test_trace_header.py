"""The client sends the trace of the message being handled (W3C traceparent)."""

from __future__ import annotations

import uuid
from decimal import Decimal

from shared.observability.tracing import TraceContext, use_trace
from shared.opex.testing import MockOpex

DEPTH = {"lastUpdateId": 1, "bids": [[Decimal(1), Decimal(1)]], "asks": []}


async def test_request_when_trace_current_then_traceparent_sent() -> None:
    mock = MockOpex()
    mock.on("GET", "/v3/depth", json=DEPTH)
    context = TraceContext.of(uuid.uuid4(), uuid.uuid4())
    async with mock.client(surface="v3") as opex:
        with use_trace(context):
            await opex.depth("BTC_USDT", 1)
        assert mock.last.headers["traceparent"] == context.traceparent
        await opex.depth("BTC_USDT", 1)
        assert "traceparent" not in mock.last.headers


async def test_request_when_done_then_latency_recorded_by_route_and_outcome() -> None:
    from prometheus_client import REGISTRY

    def count(outcome: str) -> float:
        value = REGISTRY.get_sample_value(
            "opexbridge_opex_request_seconds_count",
            {"method": "GET", "route": "/v3/depth", "outcome": outcome},
        )
        return value or 0.0

    mock = MockOpex()
    mock.on("GET", "/v3/depth", json=DEPTH)
    before = count("ok")
    async with mock.client(surface="v3") as opex:
        await opex.depth("BTC_USDT", 1)
    assert count("ok") == before + 1
