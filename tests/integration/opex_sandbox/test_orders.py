"""What OPEX refuses when an order is placed or canceled, with its codes, statuses and body."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from tests.integration.opex_sandbox.support import ADMIN, Api, decimals

D = Decimal


async def test_error_body_when_refused_then_opex_shape(api: Api) -> None:
    alice = await api.new_user(usdt=100)
    r = await api.place(alice, "BUY", "1", "30000")
    assert r.status_code == 400
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert set(body) == {"error", "code", "message", "status", "timestamp"}
    assert (body["error"], body["code"], body["status"]) == (
        "SubmitOrderForbiddenByAccountant",
        4001,
        400,
    )
    assert isinstance(body["message"], str)
    assert isinstance(body["timestamp"], int)


@pytest.mark.parametrize(
    ("qty", "price", "param"),
    [("0.01", "30000.001", "price"), ("0.0100001", "30000", "quantity")],
)
async def test_place_when_off_the_step_then_1020(
    api: Api, qty: str, price: str, param: str
) -> None:
    alice = await api.new_user(usdt=100_000)
    r = await api.place(alice, "BUY", qty, price)
    assert (r.status_code, r.json()["code"]) == (400, 1020)
    assert param in r.json()["message"]


async def test_place_when_market_gtc_then_accepted_but_rejected_by_the_engine(api: Api) -> None:
    alice = await api.new_user(usdt=100_000)
    r = await api.place(alice, "BUY", "0.01", "30000", type="MARKET", tif="GTC")
    assert r.status_code == 200  # OPEX answers before its engine sees the order
    await asyncio.sleep(0.1)
    assert await api.all_orders(alice) == []  # REJECTED by the engine: never listed
    state = (await api.http.get("/sandbox/state")).json()
    assert state["rejected"] == 1
    account = decimals(await api.v3("GET", "/v3/account", alice))
    usdt = next(b for b in account["balances"] if b["asset"] == "USDT")
    assert (usdt["free"], usdt["locked"]) == (D(100_000), D(0))


async def test_place_when_market_without_price_then_4003(api: Api) -> None:
    alice = await api.new_user(usdt=100_000)
    r = await api.place(alice, "BUY", "0.01", None, type="MARKET", tif="IOC")
    assert (r.status_code, r.json()["code"]) == (400, 4003)


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"price": None}, "price"),
        ({"tif": None}, "timeInForce"),
        ({"qty": "0"}, "quantity"),
        ({"qty": "-1"}, "quantity"),
        ({"price": "abc"}, "price"),
        ({"type": "STOP_LOSS_LIMIT"}, "stopPrice"),
        ({"side": "buy"}, "side"),  # enums are case-sensitive
        ({"type": "OCO"}, "type"),
    ],
)
async def test_place_when_parameter_missing_or_invalid_then_1020(
    api: Api, fields: dict[str, str | None], param: str
) -> None:
    alice = await api.new_user(usdt=100_000)
    values: dict[str, str | None] = {
        "side": "BUY", "qty": "0.01", "price": "30000", "type": "LIMIT", "tif": "GTC",
    }  # fmt: skip
    values.update(fields)
    r = await api.place(
        alice, str(values["side"]), str(values["qty"]), values["price"],
        type=str(values["type"]), tif=values["tif"],
    )  # fmt: skip
    assert (r.status_code, r.json()["code"]) == (400, 1020)
    assert f"'{param}'" in r.json()["message"]


async def test_place_when_v3_without_timestamp_then_1020(api: Api) -> None:
    alice = await api.new_user(usdt=100_000)
    query = "symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=0.01&price=30000"
    r = await api.http.post(f"/v3/order?{query}", headers=alice.signed("POST", "/v3/order", query))
    assert (r.status_code, r.json()["code"]) == (400, 1020)
    assert "'timestamp'" in r.json()["message"]


async def test_place_when_parameters_in_form_body_then_accepted(api: Api) -> None:
    alice = await api.new_user(usdt=100_000)
    body = (
        "symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=0.01&price=28000&timestamp=1"
    )
    headers = alice.signed("POST", "/v3/order", "") | {
        "Content-Type": "application/x-www-form-urlencoded"
    }
    r = await api.http.post("/v3/order", content=body, headers=headers)
    assert r.status_code == 200, r.text
    await api.listed(alice, price=D(28000))
    # a JSON body is refused by Spring's `consumes` before OPEX's code runs
    r = await api.http.post(
        "/v3/order",
        content=b'{"symbol":"BTCUSDT"}',
        headers=alice.bearer | {"Content-Type": "application/json"},
    )
    assert r.status_code == 415


async def test_place_when_unknown_symbol_then_7002_on_v3_and_6011_on_native(api: Api) -> None:
    alice = await api.new_user(usdt=100_000)
    r = await api.place(alice, "BUY", "0.01", "30000", symbol="DOGEUSDT")
    assert (r.status_code, r.json()["code"]) == (404, 7002)
    r = await api.place(alice, "BUY", "0.01", "30000", symbol="BTC_USDT")  # not an alias
    assert (r.status_code, r.json()["code"]) == (404, 7002)
    r = await api.native(
        "POST", "/opex/v1/order", alice, symbol="DOGE_USDT", side="BUY", type="LIMIT",
        timeInForce="GTC", quantity="1", price="1",
    )  # fmt: skip
    assert (r.status_code, r.json()["code"]) == (400, 6011)
    for route in ("/v3/openOrders", "/v3/allOrders", "/v3/myTrades"):
        r = await api.v3("GET", route, alice)
        assert (r.status_code, r.json()["code"]) == (404, 7002), route


async def test_place_when_pair_checks_fail_then_6038_4002_4003_4001(api: Api) -> None:
    alice = await api.new_user(usdt=1000, eth=1)
    r = await api.place(alice, "BUY", "0.0001", "30000")  # 3 USDT < minOrder 10
    assert (r.status_code, r.json()["code"]) == (400, 4003)
    r = await api.place(alice, "BUY", "1", "30000")  # 30,000 USDT > 1,000 free
    assert (r.status_code, r.json()["code"]) == (400, 4001)
    r = await api.place(alice, "SELL", "2", "2000", symbol="ETHUSDT")  # 2 ETH > 1
    assert (r.status_code, r.json()["code"]) == (400, 4001)

    setting = {"pair": "ETH_USDT", "isAvailable": True, "minOrder": 10, "maxOrder": 100_000}
    r = await api.http.put(
        "/pair-setting", json=setting | {"orderTypes": "LIMIT_ORDER"}, headers=ADMIN
    )
    assert r.status_code == 200, r.text
    assert r.json()["orderTypes"] == "LIMIT_ORDER"
    r = await api.place(alice, "SELL", "0.1", "2000", symbol="ETHUSDT", type="MARKET", tif="IOC")
    assert (r.status_code, r.json()["code"]) == (400, 4002)
    r = await api.http.put(
        "/pair-setting", json=setting | {"isAvailable": False, "orderTypes": ""}, headers=ADMIN
    )
    assert r.status_code == 200
    r = await api.place(alice, "SELL", "0.1", "2000", symbol="ETHUSDT")
    assert (r.status_code, r.json()["code"]) == (400, 6038)
    r = await api.http.get("/opex/v1/market/pair")
    eth = next(p for p in decimals(r) if p["pair"] == "ETH_USDT")
    assert (eth["isAvailable"], eth["minOrder"], eth["orderTypes"]) == (False, 10, "")


async def test_place_when_client_order_id_sent_then_ignored(api: Api) -> None:
    alice = await api.new_user(usdt=100_000)
    r = await api.v3(
        "POST", "/v3/order", alice, symbol="BTCUSDT", side="BUY", type="LIMIT",
        timeInForce="GTC", quantity="0.01", price="27000", newClientOrderId="mine-1",
    )  # fmt: skip
    assert r.status_code == 200
    assert "clientOrderId" not in r.json()
    [order] = await api.listed(alice, price=D(27000))
    assert order["clientOrderId"] == ""
    r = await api.v3("GET", "/v3/order", alice, symbol="BTCUSDT", origClientOrderId="mine-1")
    assert (r.status_code, r.json()["code"]) == (404, 7001)


async def test_cancel_when_no_id_unknown_id_or_other_users_order_then_1002_or_7001(
    api: Api,
) -> None:
    alice = await api.new_user(usdt=100_000)
    bob = await api.new_user()
    r = await api.v3("DELETE", "/v3/order", alice, symbol="BTCUSDT")
    assert (r.status_code, r.json()["code"]) == (400, 1002)
    r = await api.v3("DELETE", "/v3/order", alice, symbol="BTCUSDT", orderId=999)
    assert (r.status_code, r.json()["code"]) == (404, 7001)
    await api.place(alice, "BUY", "0.01", "26000")
    [order] = await api.listed(alice, price=D(26000))
    r = await api.v3("DELETE", "/v3/order", bob, symbol="BTCUSDT", orderId=order["orderId"])
    assert (r.status_code, r.json()["code"]) == (404, 7001)
    r = await api.native(
        "PUT", "/opex/v1/order", alice, symbol="BTC_USDT", origClientOrderId="whatever"
    )
    assert (r.status_code, r.json()["code"]) == (404, 7001)


async def test_listing_when_limit_and_time_filters_then_applied(api: Api) -> None:
    alice = await api.new_user(usdt=100_000)
    for price in ("20000", "20001", "20002"):
        await api.place(alice, "BUY", "0.01", price)
    orders = await api.listed(alice, price=D(20002))
    orders = await api.all_orders(alice)
    assert len(orders) == 3
    r = await api.v3("GET", "/v3/allOrders", alice, symbol="BTCUSDT", limit=2)
    assert len(r.json()) == 2
    newest = max(o["updateTime"] for o in orders)
    r = await api.v3("GET", "/v3/allOrders", alice, symbol="BTCUSDT", startTime=newest + 1)
    assert r.json() == []
    r = await api.v3("GET", "/v3/openOrders", alice, symbol="BTCUSDT", limit=1)
    assert len(r.json()) == 1


async def test_place_when_arithmetic_overflows_then_500_1001_as_opex(api: Api) -> None:
    # passes the value check (1e40 x 1e-39 = 10 USDT) and breaks the step arithmetic, as
    # OPEX's longValueExact() breaks with an unmapped ArithmeticException
    alice = await api.new_user(usdt=100)
    r = await api.place(alice, "BUY", "1e-39", "1e40")
    assert (r.status_code, r.json()["code"], r.json()["error"]) == (
        500,
        1001,
        "InternalServerError",
    )
    assert await api.audit() == []
