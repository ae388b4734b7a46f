"""Public market data on both surfaces, pair settings, and routes OPEX does not have."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from tests.integration.opex_sandbox.conftest import MakeApi
from tests.integration.opex_sandbox.support import ADMIN, Api, decimals

D = Decimal


async def trade_once(api: Api) -> None:
    alice = await api.new_user(usdt=100_000)
    bob = await api.new_user(btc=1)
    await api.place(bob, "SELL", "0.02", "30000")
    await api.place(alice, "BUY", "0.01", "30000")
    await api.listed(alice, price=D(30000))
    await asyncio.sleep(0.05)


async def test_depth_trades_and_tickers_when_one_trade_then_reported(api: Api) -> None:
    await trade_once(api)
    depth = decimals(await api.http.get("/v3/depth", params={"symbol": "BTCUSDT", "limit": 5}))
    assert depth["bids"] == []
    assert depth["asks"] == [[D(30000), D("0.01")]]
    assert isinstance(depth["lastUpdateId"], Decimal)
    native = decimals(await api.http.get("/opex/v1/market/depth", params={"symbol": "BTC_USDT"}))
    assert native["asks"] == depth["asks"]

    [trade] = decimals(await api.http.get("/v3/trades", params={"symbol": "BTCUSDT"}))
    assert (trade["price"], trade["qty"], trade["quoteQty"], trade["isBuyerMaker"]) == (
        D(30000),
        D("0.01"),
        D(300),
        False,
    )
    [ticker] = decimals(await api.http.get("/v3/ticker/24h", params={"symbol": "BTCUSDT"}))
    assert (ticker["symbol"], ticker["base"], ticker["quote"]) == ("BTCUSDT", "BTC", "USDT")
    assert (ticker["lastPrice"], ticker["volume"], ticker["count"]) == (D(30000), D("0.01"), 1)
    assert ticker["askPrice"] == D(30000)
    every = decimals(await api.http.get("/opex/v1/market/ticker/7d"))
    assert {t["symbol"] for t in every} == {"BTC_USDT", "ETH_USDT"}
    prices = (await api.http.get("/v3/ticker/price")).json()
    assert prices == [{"symbol": "BTCUSDT", "price": "30000.00"}]  # a String in OPEX
    r = await api.http.get("/opex/v1/market/ticker/price", params={"symbol": "BTC_USDT"})
    assert r.json() == [{"symbol": "BTC_USDT", "price": "30000.00"}]


@pytest.mark.parametrize("path", ["/v3/ticker/24hr", "/v3/ticker/1m", "/opex/v1/market/x"])
async def test_route_when_opex_has_none_then_spring_404(api: Api, path: str) -> None:
    r = await api.http.get(path)
    assert r.status_code == 404
    assert (r.json()["status"], r.json()["error"]) == (404, "Not Found")


async def test_unknown_route_when_not_public_then_401_before_404(api: Api) -> None:
    """Spring Security runs before routing: an unknown protected path is 401 to strangers."""
    r = await api.http.get("/v3/nothing")
    assert (r.status_code, r.content) == (401, b"")
    alice = await api.new_user()
    r = await api.http.get("/api/v3/nothing", headers=alice.bearer)
    assert (r.status_code, r.json()["error"]) == (404, "Not Found")
    r = await api.http.patch("/v3/order", headers=alice.legacy)
    assert r.status_code == 405


async def test_market_routes_when_unknown_symbol_or_bad_limit_then_opex_errors(api: Api) -> None:
    r = await api.http.get("/v3/depth", params={"symbol": "NOPEUSDT"})
    assert (r.status_code, r.json()["code"]) == (404, 7002)
    r = await api.http.get("/v3/ticker/24h", params={"symbol": "NOPEUSDT"})
    assert (r.status_code, r.json()["code"]) == (404, 7002)
    r = await api.http.get("/v3/trades", params={"symbol": "BTCUSDT", "limit": 5000})
    assert (r.status_code, r.json()["code"]) == (400, 7004)
    r = await api.http.get("/v3/depth")
    assert (r.status_code, r.json()["code"]) == (400, 1020)


async def test_exchange_info_and_pairs_when_read_then_steps_bounds_and_types(api: Api) -> None:
    info = decimals(await api.http.get("/v3/exchangeInfo"))
    btc = next(s for s in info["symbols"] if s["symbol"] == "BTCUSDT")
    assert (btc["baseAsset"], btc["baseAssetPrecision"], btc["quoteAssetPrecision"]) == (
        "BTC",
        6,
        2,
    )
    pairs = decimals(await api.http.get("/opex/v1/market/pair"))
    assert {
        p["pair"]: (p["isAvailable"], p["minOrder"], p["maxOrder"], p["orderTypes"]) for p in pairs
    }["BTC_USDT"] == (True, D(10), D(1_000_000), "LIMIT_ORDER,MARKET_ORDER")
    settings = decimals(await api.http.get("/api/pair-setting"))
    assert {s["pair"] for s in settings} == {"BTC_USDT", "ETH_USDT"}
    r = await api.http.get("/pair-setting/NOPE_USDT")
    assert (r.status_code, r.json()["code"]) == (400, 6011)


async def test_new_pair_when_added_then_unavailable_until_admin_sets_it(api: Api) -> None:
    r = await api.http.post(
        "/sandbox/pairs", json={"symbol": "SOL_USDT", "priceStep": "0.01", "quantityStep": "0.1"}
    )
    assert r.json() == {"symbol": "SOL_USDT", "alias": "SOLUSDT"}
    setting = decimals(await api.http.get("/pair-setting/SOL_USDT"))
    assert (setting["isAvailable"], setting["minOrder"], setting["maxOrder"]) == (False, 1, 1)
    alice = await api.new_user(usdt=1000)
    r = await api.place(alice, "BUY", "1", "100", symbol="SOLUSDT")
    assert (r.status_code, r.json()["code"]) == (400, 6038)
    r = await api.http.put(
        "/pair-setting",
        json={
            "pair": "SOL_USDT",
            "isAvailable": True,
            "minOrder": "5",
            "maxOrder": 10000,
            "orderTypes": "LIMIT_ORDER,MARKET_ORDER",
        },
        headers=ADMIN,
    )
    assert r.status_code == 200, r.text
    assert (await api.place(alice, "BUY", "1", "100", symbol="SOLUSDT")).status_code == 200
    r = await api.http.put("/pair-setting", json={"pair": "NOPE_USDT"}, headers=ADMIN)
    assert (r.status_code, r.json()["code"]) == (400, 1020)


async def test_health_and_audit_when_market_maker_runs_then_up_and_sound(
    make_api: MakeApi,
) -> None:
    async with make_api(market_maker=True, market_maker_interval_ms=20) as api:
        assert (await api.http.get("/actuator/health")).json() == {"status": "UP"}
        first = decimals(await api.http.get("/v3/depth", params={"symbol": "BTCUSDT"}))
        await asyncio.sleep(0.3)  # the random walk moves the quotes
        later = decimals(await api.http.get("/v3/depth", params={"symbol": "BTCUSDT"}))
        assert len(later["bids"]) == len(later["asks"]) == 5
        assert later["lastUpdateId"] > first["lastUpdateId"]
        assert (await api.http.get("/sandbox/audit")).json() == []
