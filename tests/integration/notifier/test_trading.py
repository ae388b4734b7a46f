"""The trading REST API (adapters/trading.py) through a real HTTP client against the
notifier served by uvicorn, the real Kafka broker and PostgreSQL, and the OPEX sandbox.

What the order gateway would do (OPEX answering) is played here by publishing order
events to ``orders.events``: the gateway is being built elsewhere."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
import schemathesis
import uvicorn
from aiokafka import AIOKafkaConsumer
from hypothesis import HealthCheck, Phase, given, settings
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import services.opex_sandbox.app as sandbox_app
import services.opex_sandbox.config as sandbox_config
from shared.contracts import (
    CancelOrder,
    ClosePosition,
    Fill,
    OrderFilled,
    OrderSubmitted,
    PlaceOrder,
    decode,
    new_message,
)
from shared.messaging import KafkaSettings
from shared.opex import OpexSettings
from tests.integration.notifier.helpers import (
    Client,
    InProcessServer,
    Notifier,
    Producer,
    hs_token,
    notifier_settings,
    position_updated,
    ticker,
    unique,
)
from tests.support.asgi import serve_in_thread

pytestmark = pytest.mark.integration


class Stub:
    """A service's ``/health`` that a test can turn off."""

    def __init__(self) -> None:
        self.up = True

    def app(self) -> Starlette:
        async def health(_request: Request) -> JSONResponse:
            return JSONResponse({}, status_code=200 if self.up else 503)

        return Starlette(routes=[Route("/health", health)])


@pytest.fixture(scope="module")
def sandbox_url() -> Iterator[str]:
    config = sandbox_config.SandboxConfig(
        host="127.0.0.1", port=0, market_maker=True, rate_limit_enabled=False
    )
    with serve_in_thread(sandbox_app.create_app(config)) as url:
        yield url


@pytest.fixture(scope="module")
async def risk_stub() -> AsyncIterator[tuple[Stub, str]]:
    stub = Stub()
    config = uvicorn.Config(stub.app(), host="127.0.0.1", port=0, log_config=None, lifespan="off")
    server = InProcessServer(config)
    await server.start()
    try:
        yield stub, f"http://127.0.0.1:{server.port}/health"
    finally:
        await server.stop()


@pytest.fixture(scope="module")
async def api(
    kafka_settings: KafkaSettings,
    database_url: str,
    topic_prefix: str,
    schema: str,
    sandbox_url: str,
    risk_stub: tuple[Stub, str],
) -> AsyncIterator[Notifier]:
    settings = notifier_settings(
        schema,
        topic_prefix,
        service_health_urls={"risk_engine": risk_stub[1]},
        health_cache_s=0,
    )
    opex = OpexSettings(api_url=sandbox_url, timeout=5)
    server = Notifier(settings, kafka_settings, database_url, opex=opex)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture(scope="module")
async def commands(
    kafka_settings: KafkaSettings, topic_prefix: str
) -> AsyncIterator[AIOKafkaConsumer]:
    """A read_committed reader of this session's orders.commands, from the start."""
    consumer = AIOKafkaConsumer(
        topic_prefix + "orders.commands",
        **kafka_settings.aiokafka_kwargs(),
        group_id=None,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        yield consumer
    finally:
        await consumer.stop()


_seen: list[Any] = []


async def commands_of(
    consumer: AIOKafkaConsumer, user: str, *, expect: int, settle_s: float = 1.5
) -> list[Any]:
    """Every command on orders.commands for ``user``: waits until ``expect`` arrived,
    then ``settle_s`` more, so a duplicate would be seen too."""
    deadline = time.monotonic() + 20
    settle_until: float | None = None
    while True:
        batches = await consumer.getmany(timeout_ms=200)
        for records in batches.values():
            _seen.extend(decode(r.value, topic="orders.commands") for r in records)
        mine = [e for e in _seen if e.user_id == user]
        now = time.monotonic()
        if len(mine) >= expect and settle_until is None:
            settle_until = now + settle_s
        if (settle_until is not None and now >= settle_until) or now > deadline:
            return mine


def auth(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {hs_token(user)}"}


ORDER = {"symbol": "BTCUSDT", "side": "buy", "type": "limit", "quantity": 0.001, "price": 45000.0}


async def test_place_when_valid_then_202_and_place_order_on_the_topic(
    api: Notifier, commands: AIOKafkaConsumer
) -> None:
    user = unique("u")
    async with api.http() as http:
        response = await http.post("/api/trading/orders", json=ORDER, headers=auth(user))
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "accepted"
    assert body["quantity"] == "0.001"
    [envelope] = await commands_of(commands, user, expect=1)
    order = envelope.data_as(PlaceOrder)
    assert str(envelope.id) == body["command_id"]
    assert order.client_order_id == body["client_order_id"]
    assert (order.symbol, order.quantity, order.price) == (
        "BTC_USDT",
        Decimal("0.001"),
        Decimal("45000"),
    )


async def test_place_when_invalid_then_422_with_field_and_nothing_published(
    api: Notifier, commands: AIOKafkaConsumer
) -> None:
    user = unique("u")
    cases = [
        ({**ORDER, "quantity": -1}, "quantity", "non_positive_amount"),
        ({**ORDER, "price": None}, "price", "missing_field"),
        ({**ORDER, "symbol": "??"}, "symbol", "invalid_symbol"),
        ({**ORDER, "side": "up"}, "side", None),
        ({k: v for k, v in ORDER.items() if k != "quantity"}, "quantity", "missing_field"),
    ]
    async with api.http() as http:
        for body, field, code in cases:
            response = await http.post("/api/trading/orders", json=body, headers=auth(user))
            assert response.status_code == 422, body
            error = response.json()["error"]
            assert error["field"] == field
            if code is not None:
                assert error["code"] == code
        malformed = await http.post("/api/trading/orders", content=b"{nope", headers=auth(user))
        anonymous = await http.post("/api/trading/orders", json=ORDER)
    assert malformed.status_code == 400
    assert malformed.json()["error"]["code"] == "malformed_json"
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "invalid_token"
    # a valid order afterwards is the only thing this user published
    async with api.http() as http:
        ok = await http.post("/api/trading/orders", json=ORDER, headers=auth(user))
    mine = await commands_of(commands, user, expect=1)
    assert [str(e.id) for e in mine] == [ok.json()["command_id"]]


async def test_idempotency_key_when_replayed_and_concurrent_then_one_command(
    api: Notifier, commands: AIOKafkaConsumer
) -> None:
    user = unique("u")
    headers = {**auth(user), "Idempotency-Key": "k-" + uuid.uuid4().hex}
    race = {**auth(user), "Idempotency-Key": "race-" + uuid.uuid4().hex}
    async with api.http() as http:
        first = await http.post("/api/trading/orders", json=ORDER, headers=headers)
        again = await http.post("/api/trading/orders", json=ORDER, headers=headers)
        concurrent = await asyncio.gather(
            *(http.post("/api/trading/orders", json=ORDER, headers=race) for _ in range(10))
        )
        other = await http.post(
            "/api/trading/orders", json={**ORDER, "quantity": "0.002"}, headers=headers
        )
        someone_else = await http.post(
            "/api/trading/orders",
            json=ORDER,
            headers={**auth(unique("v")), "Idempotency-Key": headers["Idempotency-Key"]},
        )
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert {r.status_code for r in concurrent} == {202}
    assert len({r.json()["command_id"] for r in concurrent}) == 1
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    assert someone_else.status_code == 202  # keys are per user
    mine = await commands_of(commands, user, expect=2, settle_s=2.0)
    assert sorted(str(e.id) for e in mine) == sorted(
        [first.json()["command_id"], concurrent[0].json()["command_id"]]
    )


async def test_cancel_and_close_when_own_then_202_else_404(
    api: Notifier, producer: Producer, commands: AIOKafkaConsumer
) -> None:
    owner, intruder = unique("u"), unique("x")
    async with api.http() as http:
        placed = await http.post("/api/trading/orders", json=ORDER, headers=auth(owner))
        client_order_id = placed.json()["client_order_id"]
        # known only as a command accepted here: it can be canceled already
        pending = await http.delete(f"/api/trading/orders/{client_order_id}", headers=auth(owner))
        stolen = await http.delete(f"/api/trading/orders/{client_order_id}", headers=auth(intruder))
        unknown = await http.delete("/api/trading/orders/nope-1", headers=auth(owner))
        await producer.send(position_updated(owner, "ETH_USDT", "2.5"))
        deadline = time.monotonic() + 15
        while not (await http.get("/api/trading/positions", headers=auth(owner))).json()["items"]:
            assert time.monotonic() < deadline, "the position never showed up"
            await asyncio.sleep(0.1)
        position_id = f"p-{owner}-ETH_USDT"
        close = await http.post(
            f"/api/trading/positions/{position_id}/close",
            json={"quantity": "1"},
            headers=auth(owner),
        )
        close_by_symbol = await http.post(
            "/api/trading/positions/ETHUSDT/close", headers=auth(owner)
        )
        close_stolen = await http.post(
            f"/api/trading/positions/{position_id}/close", headers=auth(intruder)
        )
    assert pending.status_code == 202
    assert pending.json()["status"] == "cancel_requested"
    assert (stolen.status_code, unknown.status_code) == (404, 404)
    assert stolen.json()["error"] == {
        "code": "order_not_found",
        "message": "no such order",
        "field": "order_id",
    }
    assert (close.status_code, close_by_symbol.status_code) == (202, 202)
    assert close_stolen.status_code == 404
    assert close_stolen.json()["error"]["code"] == "position_not_found"
    mine = await commands_of(commands, owner, expect=4)
    kinds = [type(e.data).__name__ for e in mine]
    assert kinds == ["PlaceOrder", "CancelOrder", "ClosePosition", "ClosePosition"]
    assert mine[1].data_as(CancelOrder).client_order_id == client_order_id
    assert mine[2].data_as(ClosePosition).quantity == Decimal(1)
    assert mine[3].data_as(ClosePosition).quantity is None
    assert await commands_of(commands, intruder, expect=0, settle_s=0.2) == []


async def test_order_lifecycle_when_events_arrive_then_listed_pushed_and_final(
    api: Notifier, producer: Producer
) -> None:
    """Stands in for the gateway: the placed order's events are published here."""
    user = unique("u")
    token = hs_token(user)
    ws = await Client.open(api.ws_url(token=token, channels="orders"))
    try:
        await ws.expect("subscribed")
        async with api.http() as http:
            placed = (await http.post("/api/trading/orders", json=ORDER, headers=auth(user))).json()
            coid = placed["client_order_id"]
            common: dict[str, Any] = {
                "client_order_id": coid,
                "order_id": "9001",
                "symbol": "BTC_USDT",
                "side": "buy",
                "order_type": "limit",
                "quantity": Decimal("0.001"),
                "price": Decimal("45000"),
            }
            await producer.send(
                new_message(OrderSubmitted(**common), user_id=user),
                new_message(
                    OrderFilled(
                        **common,
                        status="FILLED",
                        filled_quantity=Decimal("0.001"),
                        avg_price=Decimal("45000"),
                        last_fill=Fill(
                            trade_id="t-1",
                            price=Decimal("45000"),
                            quantity=Decimal("0.001"),
                            fee=Decimal("0.045"),
                            fee_asset="USDT",
                            liquidity="maker",
                        ),
                    ),
                    user_id=user,
                ),
            )
            frames = await ws.user_frames(2)
            listed = (
                await http.get("/api/trading/orders?status=closed", headers=auth(user))
            ).json()
            by_opex_id = await http.delete("/api/trading/orders/9001", headers=auth(user))
    finally:
        await ws.close()
    assert [f["data"]["status"] for f in frames] == ["submitted", "filled"]
    assert [(i["client_order_id"], i["status"]) for i in listed["items"]] == [(coid, "filled")]
    assert by_opex_id.status_code == 409
    assert by_opex_id.json()["error"]["code"] == "order_not_open"


async def test_market_when_ticker_published_then_served_and_book_from_opex(
    api: Notifier, producer: Producer
) -> None:
    async with api.http() as http:
        await asyncio.sleep(0.5)  # the ticker subscriber reads from the latest offset
        await producer.send(ticker("ETH_USDT", "2345.5"))
        deadline = time.monotonic() + 15
        while True:
            served = await http.get("/api/market/ticker/ETHUSDT")
            if served.status_code == 200 and served.json()["source"] == "market.tickers":
                break
            assert time.monotonic() < deadline, served.text
            await asyncio.sleep(0.1)
        book = await http.get("/api/market/orderbook/BTCUSDT", params={"limit": 5})
        fallback = await http.get("/api/market/ticker/BTC_USDT")
        bad = await http.get("/api/market/orderbook/BTCUSDT", params={"limit": 0})
    assert served.json()["last_price"] == "2345.5"
    assert book.status_code == 200
    levels = book.json()
    assert levels["source"] == "opex"
    assert 0 < len(levels["bids"]) <= 5
    assert 0 < len(levels["asks"]) <= 5
    assert Decimal(levels["bids"][0]["price"]) < Decimal(levels["asks"][0]["price"])
    assert fallback.status_code == 200
    assert fallback.json()["source"] == "opex"
    assert bad.status_code == 422
    assert bad.json()["error"] == {
        "code": "invalid_parameter",
        "message": bad.json()["error"]["message"],
        "field": "limit",
        "details": bad.json()["error"]["details"],
    }


async def test_health_when_all_up_then_200_and_service_down_then_503(
    api: Notifier, risk_stub: tuple[Stub, str]
) -> None:
    stub, _url = risk_stub
    async with api.http() as http:
        up = await http.get("/api/trading/health")
        stub.up = False
        try:
            down = await http.get("/api/trading/health")
        finally:
            stub.up = True
    assert up.status_code == 200, up.text
    assert {k: v["ok"] for k, v in up.json()["checks"].items()} == {
        "broker": True,
        "database": True,
        "opex": True,
    }
    assert up.json()["services"]["risk_engine"]["last_heartbeat"] is not None
    assert down.status_code == 503
    risk = down.json()["services"]["risk_engine"]
    assert (risk["ok"], risk["last_heartbeat"]) == (
        False,
        up.json()["services"]["risk_engine"]["last_heartbeat"],
    )


@pytest.mark.filterwarnings(
    # schemathesis's strategies use `random` (their concern, not a failure of the API)
    "ignore::hypothesis.errors.HypothesisDeprecationWarning"
)
async def test_openapi_when_fuzzed_then_no_server_error(api: Notifier) -> None:
    """schemathesis against the served OpenAPI document, bounded (a few examples per
    operation), authenticated as a fresh user: no answer is a 5xx."""
    base = f"http://127.0.0.1:{api.port}"
    async with httpx.AsyncClient(base_url=base) as http:
        document = (await http.get("/openapi.json")).json()
    schema = schemathesis.openapi.from_dict(document)
    headers = {"Authorization": f"Bearer {hs_token(unique('fuzz'))}"}
    server_errors: list[str] = []
    statuses: list[int] = []

    def fuzz(operation: Any) -> None:
        @settings(
            max_examples=6,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.explicit, Phase.generate],
        )
        @given(case=operation.as_strategy())
        def probe(case: Any) -> None:
            response = case.call(base_url=base, headers=headers, timeout=10)
            statuses.append(response.status_code)
            if response.status_code >= 500 and response.status_code != 503:
                server_errors.append(f"{case.method} {case.formatted_path}: {response.text[:200]}")

        probe()

    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    for operation in operations:
        await asyncio.to_thread(fuzz, operation)
    assert len(operations) >= 9
    assert statuses
    assert server_errors == [], json.dumps(server_errors[:5])
