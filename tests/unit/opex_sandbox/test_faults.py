"""The fault layer against a dummy ASGI app."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from pydantic import ValidationError

from services.opex_sandbox.faults import FaultMiddleware, Faults, Message, Scope, opex_path


class Dummy:
    """An app that answers 200 `{"ok": true}` and counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        self.calls += 1
        body = b'{"ok":true}'
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})


async def call(app: FaultMiddleware, method: str, path: str) -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app({"type": "http", "method": method, "path": path}, receive, send)
    return sent


def status(messages: list[Message]) -> int:
    return int(messages[0]["status"])


def body(messages: list[Message]) -> bytes:
    return b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")


def make(**settings: Any) -> tuple[FaultMiddleware, Dummy, Faults]:
    faults = Faults(seed=1, default_take_delay_s=0.2)
    faults.update(settings)
    dummy = Dummy()
    return FaultMiddleware(dummy, faults, lambda: 42), dummy, faults


def test_opex_path_when_api_prefixed_then_stripped() -> None:
    assert opex_path("/api/v3/order") == "/v3/order"
    assert opex_path("/v3/order") == "/v3/order"
    assert opex_path("/api") == "/"


def test_update_when_fields_given_then_merged_and_validated() -> None:
    faults = Faults()
    faults.update({"latency_ms": 5})
    faults.update({"error_rate": 0.5})
    assert (faults.settings.latency_ms, faults.settings.error_rate) == (5, 0.5)
    with pytest.raises(ValidationError):
        faults.update({"error_rate": 2})
    with pytest.raises(ValidationError):
        faults.update({"nonsense": 1})
    assert faults.clear().error_rate == 0
    assert not faults.active


async def test_middleware_when_no_fault_then_passes_through() -> None:
    app, dummy, _ = make()
    assert status(await call(app, "POST", "/v3/order")) == 200
    assert dummy.calls == 1


async def test_middleware_when_outage_then_503_health_down_and_sandbox_routes_untouched() -> None:
    app, dummy, _ = make(outage=True)
    assert status(await call(app, "POST", "/api/v3/order")) == 503
    health = await call(app, "GET", "/actuator/health")
    assert (status(health), json.loads(body(health))) == (503, {"status": "DOWN"})
    assert status(await call(app, "GET", "/sandbox/faults")) == 200
    assert dummy.calls == 1


async def test_middleware_when_error_rate_one_then_5xx_before_anything_is_done() -> None:
    app, dummy, _ = make(error_rate=1.0)
    seen = set()
    for _ in range(30):
        messages = await call(app, "POST", "/v3/order")
        seen.add(status(messages))
        if status(messages) == 500:
            error = json.loads(body(messages))
            assert (error["code"], error["error"]) == (1001, "InternalServerError")
    assert seen == {500, 502, 503}
    assert dummy.calls == 0
    # health is only touched by an outage
    assert status(await call(app, "GET", "/actuator/health")) == 200


async def test_middleware_when_latency_then_answer_is_late() -> None:
    app, dummy, _ = make(latency_ms=80)
    started = time.perf_counter()
    assert status(await call(app, "GET", "/v3/depth")) == 200
    assert time.perf_counter() - started >= 0.075
    assert dummy.calls == 1


async def test_middleware_when_take_no_answer_then_handled_but_answer_held_back() -> None:
    app, dummy, _ = make(take_no_answer_rate=1.0, take_no_answer_delay_s=5)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(call(app, "POST", "/opex/v1/order"), 0.2)
    assert dummy.calls == 1  # the order was taken
    # only order placement and cancel are affected
    assert status(await call(app, "GET", "/v3/openOrders")) == 200


async def test_middleware_when_take_no_answer_delay_passes_then_answer_arrives() -> None:
    app, _dummy, _ = make(take_no_answer_rate=1.0)  # the default delay, 0.2 s here
    started = time.perf_counter()
    messages = await call(app, "DELETE", "/v3/order")
    assert status(messages) == 200
    assert time.perf_counter() - started >= 0.19


async def test_middleware_when_drop_mode_then_headers_only() -> None:
    app, dummy, _ = make(take_no_answer_rate=1.0, take_no_answer_mode="drop")
    messages = await call(app, "PUT", "/api/opex/v1/order")
    assert [m["type"] for m in messages] == ["http.response.start"]
    assert dummy.calls == 1


async def test_sleep_when_stopping_then_cut_short() -> None:
    faults = Faults()
    faults.stopping.set()
    started = time.perf_counter()
    await faults.sleep(5)
    assert time.perf_counter() - started < 1
