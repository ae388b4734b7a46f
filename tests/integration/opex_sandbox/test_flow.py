"""The newcomer's path through the sandbox, by hand, on both surfaces."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from tests.integration.opex_sandbox.conftest import MakeApi
from tests.integration.opex_sandbox.support import ADMIN, Api, decimals

D = Decimal


async def test_newcomer_flow_when_following_opex_md_then_place_list_fill_trade_and_cancel(
    api: Api,
) -> None:
    alice = await api.new_user(usdt=100_000)
    bob = await api.new_user(btc=2)

    # place: no order id, and not listed yet
    r = await api.place(alice, "BUY", "0.01", "30000")
    assert r.status_code == 200, r.text
    ack = r.json()
    assert ack["symbol"] == "BTCUSDT"
    assert (ack["orderId"], ack["orderListId"]) == (-1, -1)
    assert isinstance(ack["transactTime"], int)
    assert await api.all_orders(alice) == []
    [order] = await api.listed(alice, price=D("30000.00"))
    assert order["status"] == "NEW"
    assert order["clientOrderId"] == ""
    assert order["origQty"] == D("0.01")
    assert order["orderId"] > 0
    # funds are held: 300 USDT locked
    account = decimals(await api.v3("GET", "/v3/account", alice))
    usdt = next(b for b in account["balances"] if b["asset"] == "USDT")
    assert (usdt["free"], usdt["locked"]) == (D(99_700), D(300))

    # open orders, and the one order by id
    r = await api.v3("GET", "/v3/openOrders", alice, symbol="BTCUSDT")
    assert [o["orderId"] for o in decimals(r)] == [order["orderId"]]
    r = await api.v3("GET", "/v3/order", alice, symbol="BTCUSDT", orderId=order["orderId"])
    assert decimals(r)["status"] == "NEW"

    # bob sells into it: a fill against another user
    r = await api.place(bob, "SELL", "0.01", "29990")
    assert r.status_code == 200, r.text
    [filled] = await api.listed(alice, price=D("30000.00"))
    while filled["status"] != "FILLED":
        await asyncio.sleep(0.01)
        [filled] = await api.listed(alice, price=D("30000.00"))
    assert filled["executedQty"] == D("0.01")
    assert filled["cummulativeQuoteQty"] == D(300)

    # my trades: OPEX's isBuyer is inverted (side = 'ASK'); isMaker is right
    r = await api.v3("GET", "/v3/myTrades", alice, symbol="BTCUSDT")
    [trade] = decimals(r)
    assert (trade["price"], trade["qty"], trade["orderId"]) == (
        D(30000),
        D("0.01"),
        order["orderId"],
    )
    assert (trade["isBuyer"], trade["isMaker"], trade["commissionAsset"]) == (False, True, "BTC")
    assert trade["commission"] == D("0.00001")  # maker fee 0.1% of 0.01 BTC

    # a filled order cannot be canceled: 7006 (HTTP 403)
    r = await api.v3("DELETE", "/v3/order", alice, symbol="BTCUSDT", orderId=order["orderId"])
    assert r.status_code == 403
    assert decimals(r)["code"] == 7006

    # cancel a working order: CANCELED at once, applied a moment later
    await api.place(alice, "BUY", "0.01", "29000")
    [working] = await api.listed(alice, price=D("29000.00"))
    r = await api.v3("DELETE", "/v3/order", alice, symbol="BTCUSDT", orderId=working["orderId"])
    assert r.status_code == 200, r.text
    answer = decimals(r)
    assert (answer["status"], answer["orderId"], answer["symbol"]) == (
        "CANCELED",
        working["orderId"],
        "BTCUSDT",
    )
    assert "clientOrderId" not in answer
    [still] = await api.listed(alice, price=D("29000.00"))
    assert still["status"] == "NEW"  # the cancel is asynchronous
    await asyncio.sleep(0.1)
    [canceled] = await api.listed(alice, price=D("29000.00"))
    assert canceled["status"] == "CANCELED"
    # canceling it again echoes CANCELED
    r = await api.v3("DELETE", "/v3/order", alice, symbol="BTCUSDT", orderId=working["orderId"])
    assert (r.status_code, r.json()["status"]) == (200, "CANCELED")
    assert await api.audit() == []


@pytest.mark.parametrize("prefix", ["", "/api"])
async def test_native_flow_when_bearer_token_then_date_answer_and_orders_listed(
    api: Api, prefix: str
) -> None:
    alice = await api.new_user(usdt=10_000)
    r = await api.native(
        "POST", "/opex/v1/order", alice, prefix=prefix, symbol="BTC_USDT", side="BUY",
        type="LIMIT", timeInForce="GTC", quantity="0.01", price="25000",
    )  # fmt: skip
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"symbol", "date"}
    assert r.json()["symbol"] == "BTC_USDT"
    await asyncio.sleep(0.1)
    r = await api.native("GET", "/opex/v1/order/open", alice, prefix=prefix, symbol="BTC_USDT")
    [order] = decimals(r)
    assert (order["symbol"], order["price"], order["isWorking"]) == ("BTC_USDT", D(25000), True)
    r = await api.native(
        "GET", "/opex/v1/order", alice, prefix=prefix, symbol="BTC_USDT", orderId=order["orderId"]
    )
    assert decimals(r)["ouid"] == order["ouid"]
    r = await api.native(
        "PUT", "/opex/v1/order", alice, prefix=prefix, symbol="BTC_USDT", orderId=order["orderId"]
    )
    assert (r.status_code, r.json()["status"]) == (200, "CANCELED")
    await asyncio.sleep(0.1)
    r = await api.native("GET", "/opex/v1/user/history/order", alice, prefix=prefix)
    [row] = decimals(r)
    assert (row["status"], row["side"], row["orderType"]) == ("CANCELED", "BID", "LIMIT_ORDER")
    r = await api.native("GET", "/opex/v1/wallet/asset", alice, prefix=prefix, symbol="usdt")
    assert decimals(r) == [
        {"asset": "USDT", "free": D(10_000), "locked": D(0), "withdrawing": D(0)}
    ]


async def test_place_when_api_prefix_then_same_routes_and_signature_path(api: Api) -> None:
    alice = await api.new_user(usdt=10_000)
    r = await api.v3(
        "POST", "/v3/order", alice, prefix="/api", symbol="BTCUSDT", side="BUY",
        type="LIMIT", timeInForce="GTC", quantity="0.01", price="20000",
    )  # fmt: skip
    assert r.status_code == 200, r.text
    r = await api.http.get("/api/actuator/health")
    assert r.json() == {"status": "UP"}


async def test_market_order_when_market_maker_on_then_fills_at_its_quotes(
    make_api: MakeApi,
) -> None:
    async with make_api(market_maker=True) as api:
        alice = await api.new_user(usdt=100_000)
        depth = decimals(await api.http.get("/v3/depth", params={"symbol": "BTCUSDT"}))
        best_ask = depth["asks"][0][0]
        # MARKET needs IOC (or FOK) and a price for OPEX's value check
        r = await api.place(alice, "BUY", "0.1", str(best_ask + 100), type="MARKET", tif="IOC")
        assert r.status_code == 200, r.text
        [order] = await api.listed(alice, price=best_ask + 100)
        assert (order["status"], order["type"], order["executedQty"]) == (
            "FILLED",
            "MARKET",
            D("0.1"),
        )
        r = await api.v3("GET", "/v3/myTrades", alice, symbol="BTCUSDT")
        assert decimals(r)[0]["price"] >= best_ask
        assert await api.audit() == []


async def test_market_maker_when_switched_off_and_on_then_book_empties_and_refills(
    make_api: MakeApi,
) -> None:
    async with make_api(market_maker=True) as api:
        assert (await api.http.post("/sandbox/market-maker/off")).json() == {"marketMaker": False}
        depth = (await api.http.get("/v3/depth", params={"symbol": "ETHUSDT"})).json()
        assert (depth["bids"], depth["asks"]) == ([], [])
        assert (await api.http.post("/sandbox/market-maker/on")).json() == {"marketMaker": True}
        depth = (await api.http.get("/v3/depth", params={"symbol": "ETHUSDT"})).json()
        assert len(depth["bids"]) == len(depth["asks"]) == 5


async def test_admin_deposit_when_admin_key_then_transfer_result(api: Api) -> None:
    alice = await api.new_user()
    r = await api.deposit(alice, "USDT", D("12.5"))
    result = decimals(r)
    assert (result["destUuid"], result["amount"]["amount"], result["destWalletType"]) == (
        alice.uuid,
        D("12.5"),
        "MAIN",
    )
    r = await api.http.post(
        f"/opex/v1/admin/deposit/manually/1_USDT/{alice.uuid}", json={"ref": "x"}, headers=ADMIN
    )  # OPEX's ManualTransferRequest needs gatewayUuid too
    assert (r.status_code, r.json()["code"]) == (400, 1020)
    r = await api.http.post(
        "/opex/v1/admin/deposit/manually/1_USDT/00000000-0000-0000-0000-000000000000",
        json={"ref": "x", "gatewayUuid": "manually"},
        headers=ADMIN,
    )
    assert (r.status_code, r.json()["code"]) == (404, 6001)


async def test_refresh_when_valid_refresh_token_then_new_access_token(api: Api) -> None:
    alice = await api.new_user()
    r = await api.http.post(
        "/opex/v1/oauth/protocol/openid-connect/token",
        json={"username": alice.username, "password": alice.password, "clientId": "web-app"},
    )
    refresh = r.json()["token"]["refresh_token"]
    r = await api.http.post(
        "/opex/v1/oauth/protocol/openid-connect/refresh",
        json={"clientId": "web-app", "refreshToken": refresh},
    )
    assert r.status_code == 200, r.text
    token = r.json()["token"]["access_token"]
    r = await api.http.get("/opex/v1/wallet/asset", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200
