"""`PlaceOrderEndpoint` (the raw ASGI hot path of POST /api/trading/orders) answers
exactly as the FastAPI route that documents it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

import httpx
import pytest
from fastapi import FastAPI

from services.notifier.adapters.commands import Accepted
from services.notifier.adapters.errors import install_error_handlers
from services.notifier.adapters.trading import PlaceOrderEndpoint, trading_router
from services.notifier.domain.auth import AuthError, AuthFailure, Identity
from services.notifier.domain.trading import MAX_BODY_BYTES, Intent, KnownOrder, KnownPosition


class Verifier:
    async def verify(self, token: str) -> Identity:
        if token == "good":
            return Identity("42", datetime(2030, 1, 1, tzinfo=UTC))
        if token == "old":
            raise AuthError(AuthFailure.EXPIRED, "token expired")
        if token == "down":
            raise AuthError(AuthFailure.UNAVAILABLE, "keys unavailable")
        raise AuthError(AuthFailure.INVALID, "bad signature")


FIXED_ID = "4bf92f35-77b3-4da6-a3ce-929d0e0e4736"


class Commands:
    def __init__(self) -> None:
        self.submitted: list[tuple[Intent, str | None]] = []

    async def submit(self, intent: Intent, idempotency_key: str | None = None) -> Accepted:
        self.submitted.append((intent, idempotency_key))
        if idempotency_key == "down":
            raise OSError("database unreachable")
        if idempotency_key == "bug":
            raise RuntimeError("a bug")
        response = {**intent.response, "command_id": FIXED_ID}
        return Accepted(response, replayed=idempotency_key == "seen")

    async def find_order(self, user_id: str, reference: str) -> KnownOrder | None:
        return None

    async def find_position(
        self, user_id: str, reference: str, symbol: str | None
    ) -> KnownPosition | None:
        return None


ORDER = (
    b'{"symbol": "BTCUSDT", "side": "buy", "type": "limit", "quantity": 0.001,'
    b' "price": 45000.0, "client_order_id": "c-1"}'
)


def _clients(commands: Commands) -> tuple[httpx.AsyncClient, httpx.AsyncClient]:
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(trading_router(commands, Verifier(), cast(Any, None), cast(Any, None)))
    endpoint = PlaceOrderEndpoint(commands, Verifier())
    # Starlette re-raises an unhandled error after its 500 (for the server to log it)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    routed = httpx.AsyncClient(transport=transport, base_url="http://t")
    fast = httpx.AsyncClient(transport=httpx.ASGITransport(app=endpoint), base_url="http://t")
    return routed, fast


CASES: list[tuple[dict[str, str], bytes]] = [
    ({}, ORDER),
    ({"Authorization": "Basic good"}, ORDER),
    ({"Authorization": "Bearer"}, ORDER),
    ({"Authorization": "Bearer    "}, ORDER),
    ({"Authorization": "bearer   good  "}, ORDER),
    ({"Authorization": "Bearer forged"}, ORDER),
    ({"Authorization": "Bearer old"}, ORDER),
    ({"Authorization": "Bearer down"}, ORDER),
    ({"Authorization": "Bearer good"}, ORDER),
    ({"Authorization": "Bearer good", "Idempotency-Key": "k-1"}, ORDER),
    ({"Authorization": "Bearer good", "Idempotency-Key": "seen"}, ORDER),
    ({"Authorization": "Bearer good", "Idempotency-Key": "with space"}, ORDER),
    ({"Authorization": "Bearer good", "Idempotency-Key": "x" * 129}, ORDER),
    ({"Authorization": "Bearer good", "Idempotency-Key": "down"}, ORDER),
    ({"Authorization": "Bearer good", "Idempotency-Key": "bug"}, ORDER),
    ({"Authorization": "Bearer good"}, b"{nope"),
    ({"Authorization": "Bearer good"}, b"[1, 2]"),
    ({"Authorization": "Bearer good"}, b""),
    ({"Authorization": "Bearer good"}, b'{"symbol": "BTCUSDT", "side": "buy"}'),
    ({"Authorization": "Bearer good"}, ORDER.replace(b"0.001", b"-1")),
    ({"Authorization": "Bearer good"}, b'{"quantity": NaN}'),
    ({"Authorization": "Bearer good"}, b" " * (MAX_BODY_BYTES + 1)),
    ({"Authorization": "Bearer bad"}, b" " * (MAX_BODY_BYTES + 1)),
]


@pytest.mark.parametrize(("headers", "body"), CASES)
async def test_fast_path_when_any_request_then_same_answer_as_the_route(
    headers: dict[str, str], body: bytes
) -> None:
    routed_commands, fast_commands = Commands(), Commands()
    routed, _ = _clients(routed_commands)
    _, fast = _clients(fast_commands)
    async with routed, fast:
        expected = await routed.post("/api/trading/orders", content=body, headers=headers)
        got = await fast.post("/api/trading/orders", content=body, headers=headers)
    assert got.status_code == expected.status_code
    assert got.json() == expected.json()
    assert got.content == expected.content
    for name in (
        "content-type",
        "content-length",
        "www-authenticate",
        "idempotent-replayed",
        "retry-after",
    ):
        assert got.headers.get(name) == expected.headers.get(name), name
    assert [(i.fingerprint, k) for i, k in fast_commands.submitted] == [
        (i.fingerprint, k) for i, k in routed_commands.submitted
    ]


async def test_fast_path_when_body_arrives_in_chunks_then_read_whole() -> None:
    commands = Commands()
    endpoint = PlaceOrderEndpoint(commands, Verifier())
    chunks = [ORDER[:10], ORDER[10:40], ORDER[40:]]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        chunk = chunks.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/api/trading/orders",
        "headers": [(b"authorization", b"Bearer good")],
    }
    await endpoint(scope, receive, send)
    assert sent[0]["status"] == 202
    assert commands.submitted[0][0].symbol == "BTC_USDT"


async def test_fast_path_when_client_leaves_before_its_body_then_no_answer() -> None:
    commands = Commands()
    endpoint = PlaceOrderEndpoint(commands, Verifier())
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "headers": [(b"authorization", b"Bearer good")]}
    await endpoint(scope, receive, send)
    assert sent == []
    assert commands.submitted == []


async def test_accepted_when_fast_path_or_route_then_carries_the_commands_traceparent() -> None:
    commands = Commands()
    routed, fast = _clients(commands)
    headers = {"Authorization": "Bearer good"}
    async with routed, fast:
        answers = [
            await client.post("/api/trading/orders", content=ORDER, headers=headers)
            for client in (fast, routed)
        ]
    for answer in answers:
        assert answer.status_code == 202
        trace = answer.headers["traceparent"].split("-")
        assert trace[0] == "00"
        assert trace[1] == FIXED_ID.replace("-", "")  # the command's id is the trace id
        assert trace[3] == "01"
