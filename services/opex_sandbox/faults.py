"""Fault injection for the gateway's reliability tests (test-only; not an OPEX feature).

`Faults` holds the current settings and rolls the dice (seeded); `FaultMiddleware` is the
pure-ASGI layer that applies them to OPEX's routes. `/sandbox/*` and the API docs are never
affected; `/actuator/health` only by an outage (it then answers 503 `{"status":"DOWN"}`).

Per request, in this order:

1. `outage`: 503 at once (text body, as OPEX's proxy would answer with the API down).
2. `latency_ms`: the request waits that long before it is handled.
3. `error_rate`: that share of requests answers 500 (OPEX's error body, code 1001), 502 or
   503 (proxy-style text bodies), chosen at random, before anything is done.
4. `take_no_answer_rate` (order placement and cancel routes only): the request IS handled (the
   order is taken), then the answer is held for `take_no_answer_delay_s` ("delay"; past any
   sane client timeout) or the connection is cut after the status line and headers ("drop").
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["FaultMiddleware", "FaultSettings", "Faults", "Plan", "opex_path"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

TAKE_ROUTES = frozenset(
    {
        ("POST", "/v3/order"),
        ("DELETE", "/v3/order"),
        ("POST", "/opex/v1/order"),
        ("PUT", "/opex/v1/order"),
    }
)
HEALTH = "/actuator/health"
_NOT_OPEX = ("/sandbox", "/docs", "/openapi.json", "/redoc")


class FaultSettings(BaseModel):
    """The body of `PUT /sandbox/faults` (every field optional there) and its answer."""

    model_config = ConfigDict(extra="forbid")

    latency_ms: int = Field(default=0, ge=0, le=600_000)
    error_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    take_no_answer_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    take_no_answer_mode: Literal["delay", "drop"] = "delay"
    take_no_answer_delay_s: float | None = Field(default=None, ge=0.0, le=3600.0)
    """None: the configured `SANDBOX_TAKE_NO_ANSWER_DELAY_S`."""
    outage: bool = False
    listing_delay_ms: int | None = Field(default=None, ge=0, le=600_000)
    """Overrides `SANDBOX_LISTING_DELAY_MS` while set."""
    rate_limit_enabled: bool | None = None
    """Overrides `SANDBOX_RATE_LIMIT_ENABLED` while set."""


class Plan:
    __slots__ = ("error_status", "latency_s", "take_no_answer")

    def __init__(
        self, latency_s: float = 0.0, error_status: int | None = None, take: bool = False
    ) -> None:
        self.latency_s = latency_s
        self.error_status = error_status
        self.take_no_answer = take


_NOTHING = Plan()


def opex_path(path: str) -> str:
    """The path as OPEX's api service sees it: the proxy's `/api` removed."""
    if path.startswith("/api/"):
        return path[4:]
    return "/" if path == "/api" else path


class Faults:
    def __init__(self, *, seed: int = 0, default_take_delay_s: float = 30.0) -> None:
        self.settings = FaultSettings()
        self.default_take_delay_s = default_take_delay_s
        self._rng = random.Random(seed)
        self.active = False
        self.stopping = asyncio.Event()

    def update(self, changes: dict[str, Any]) -> FaultSettings:
        """Set the given fields, keep the others (validated as a whole)."""
        merged = self.settings.model_dump() | changes
        self.settings = FaultSettings.model_validate(merged)
        self._refresh()
        return self.settings

    def clear(self) -> FaultSettings:
        self.settings = FaultSettings()
        self._refresh()
        return self.settings

    def _refresh(self) -> None:
        s = self.settings
        self.active = bool(
            s.outage or s.latency_ms or s.error_rate > 0 or s.take_no_answer_rate > 0
        )

    @property
    def take_delay_s(self) -> float:
        d = self.settings.take_no_answer_delay_s
        return self.default_take_delay_s if d is None else d

    def plan(self, method: str, path: str) -> Plan:
        """What to do to one request on an OPEX route (`path` without `/api`)."""
        s = self.settings
        if not self.active:
            return _NOTHING
        error = None
        if s.error_rate > 0 and self._rng.random() < s.error_rate:
            error = self._rng.choice((500, 502, 503))
        take = (
            s.take_no_answer_rate > 0
            and (method, path) in TAKE_ROUTES
            and self._rng.random() < s.take_no_answer_rate
        )
        return Plan(s.latency_ms / 1000, error, take)

    async def sleep(self, seconds: float) -> None:
        """Sleep, cut short when the sandbox stops."""
        if seconds <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)


async def _send_simple(
    send: Send, status: int, body: bytes, content_type: bytes = b"application/json"
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


_PROXY_TEXT = {
    502: b"<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center></body></html>",
    503: b"<html><head><title>503 Service Temporarily Unavailable</title></head><body><center><h1>503 Service Temporarily Unavailable</h1></center></body></html>",
}


def internal_error_body(now_ms: int) -> bytes:
    return json.dumps(
        {
            "error": "InternalServerError",
            "code": 1001,
            "message": "Internal server error",
            "status": 500,
            "timestamp": now_ms,
        }
    ).encode()


class FaultMiddleware:
    def __init__(self, app: ASGIApp, faults: Faults, clock: Callable[[], int]) -> None:
        self.app = app
        self.faults = faults
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        faults = self.faults
        if scope["type"] != "http" or not faults.active:
            await self.app(scope, receive, send)
            return
        path = opex_path(scope["path"])
        if path.startswith(_NOT_OPEX):
            await self.app(scope, receive, send)
            return
        if path == HEALTH:
            if faults.settings.outage:
                await _send_simple(send, 503, b'{"status":"DOWN"}')
            else:
                await self.app(scope, receive, send)
            return
        if faults.settings.outage:
            await _send_simple(send, 503, _PROXY_TEXT[503], b"text/html")
            return
        plan = faults.plan(scope["method"], path)
        if plan.latency_s:
            await faults.sleep(plan.latency_s)
        if plan.error_status is not None:
            if plan.error_status == 500:
                await _send_simple(send, 500, internal_error_body(self.clock()))
            else:
                await _send_simple(
                    send, plan.error_status, _PROXY_TEXT[plan.error_status], b"text/html"
                )
            return
        if not plan.take_no_answer:
            await self.app(scope, receive, send)
            return
        held: list[Message] = []

        async def hold(message: Message) -> None:
            held.append(message)

        await self.app(scope, receive, hold)
        if faults.settings.take_no_answer_mode == "drop":
            # The status line and headers go out, then the connection is cut: the server
            # returns without completing the response and uvicorn closes the transport.
            for message in held:
                if message["type"] == "http.response.start":
                    await send(message)
            return
        await faults.sleep(faults.take_delay_s)
        for message in held:
            await send(message)
