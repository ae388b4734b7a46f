"""Every call the suite uses, against the sandbox app, on both surfaces and with each kind
of credential: register -> verify -> confirm -> login -> API key -> admin deposit ->
place -> listed after the delay -> fill -> trades -> cancel."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from shared.opex import (
    ApiKey,
    Bearer,
    LegacyApiKey,
    OpexClient,
    OpexRefused,
    OrderStatus,
    OrderType,
    Side,
    Surface,
    TimeInForce,
)
from tests.integration.shared.opex.support import (
    LISTING_DELAY_MS,
    Control,
    User,
    eventually_listed,
    new_user,
)

SYMBOL = "BTC_USDT"
AUTH_MODES = ["signed", "legacy", "bearer"]


def creds_of(user: User, mode: str) -> ApiKey | LegacyApiKey | Bearer:
    if mode == "signed":
        return user.key
    if mode == "legacy":
        return user.legacy
    return user.bearer


async def test_health(opex: OpexClient) -> None:
    assert (await opex.health()).up
    assert (await opex.health("market")).up


@pytest.mark.parametrize("mode", AUTH_MODES)
@pytest.mark.parametrize("surface", ["v3", "opex"])
async def test_order_lifecycle(opex: OpexClient, surface: Surface, mode: str) -> None:
    client = opex.using(surface)
    seller = await new_user(opex, btc=Decimal(1))
    buyer = await new_user(opex, usdt=Decimal(10_000))
    sell, buy = creds_of(seller, mode), creds_of(buyer, mode)

    # place: OPEX answers at once, without an order id
    ack = await client.place_order(
        sell, SYMBOL, Side.SELL, OrderType.LIMIT, Decimal("0.05"), Decimal(30_000), TimeInForce.GTC
    )
    assert ack.symbol == SYMBOL
    assert ack.order_id == -1
    # listed after the delay, then readable by id on this surface
    resting = await eventually_listed(client, sell, SYMBOL, price=Decimal(30_000))
    assert resting.status is OrderStatus.NEW
    assert resting.side is Side.SELL
    assert resting.orig_qty == Decimal("0.05")
    assert [o.order_id for o in await client.open_orders(sell, SYMBOL)] == [resting.order_id]
    assert (await client.get_order(sell, SYMBOL, resting.order_id)).order_id == resting.order_id
    balances = {b.asset: b for b in await client.balances(sell)}
    assert balances["BTC"].locked == Decimal("0.05")
    assert balances["BTC"].free == Decimal("0.95")

    # fill part of it
    await client.place_order(
        buy, "BTCUSDT", "BUY", "LIMIT", Decimal("0.02"), Decimal(30_000), "GTC"
    )
    filled = await eventually_listed(client, buy, SYMBOL, price=Decimal(30_000))
    assert filled.status is OrderStatus.FILLED
    assert filled.executed_qty == Decimal("0.02")
    partly = await client.get_order(sell, SYMBOL, resting.order_id)
    assert partly.status is OrderStatus.PARTIALLY_FILLED
    assert partly.executed_qty == Decimal("0.02")

    # trades, seen by both sides
    (sold,) = await client.my_trades(sell, SYMBOL)
    (bought,) = await client.my_trades(buy, SYMBOL)
    assert sold.id == bought.id
    assert (sold.price, sold.qty, sold.quote_qty) == (
        Decimal(30_000),
        Decimal("0.02"),
        Decimal(600),
    )
    assert sold.order_id == resting.order_id
    assert bought.order_id == filled.order_id
    assert sold.is_maker
    assert not bought.is_maker
    assert not await client.my_trades(sell, SYMBOL, from_id=sold.id)

    # cancel: answered CANCELED at once, applied asynchronously
    cancel = await client.cancel_order(sell, SYMBOL, resting.order_id)
    assert cancel.status is OrderStatus.CANCELED
    assert cancel.symbol == SYMBOL
    for _ in range(100):
        if not await client.open_orders(sell, SYMBOL):
            break
        await asyncio.sleep(0.02)
    assert await client.open_orders(sell, SYMBOL) == []
    final = await client.get_order(sell, SYMBOL, resting.order_id)
    assert final.status is OrderStatus.CANCELED
    # a filled order cannot be canceled: 7006, and the refusal says so
    with pytest.raises(OpexRefused) as refused:
        await client.cancel_order(buy, SYMBOL, filled.order_id)
    assert refused.value.code == 7006

    balances = {b.asset: b for b in await client.balances(sell)}
    assert balances["BTC"].locked == 0
    assert balances["BTC"].free == Decimal("0.98")
    assert balances["USDT"].free > Decimal(590)  # 600 less the fee


@pytest.mark.parametrize("surface", ["v3", "opex"])
async def test_market_data(opex: OpexClient, surface: Surface) -> None:
    client = opex.using(surface)
    seller = await new_user(opex, btc=Decimal(1))
    buyer = await new_user(opex, usdt=Decimal(10_000))
    await client.place_order(
        seller.key, SYMBOL, "SELL", "LIMIT", Decimal("0.1"), Decimal(31_000), "GTC"
    )
    await client.place_order(
        buyer.key, SYMBOL, "BUY", "LIMIT", Decimal("0.1"), Decimal(29_000), "GTC"
    )
    await eventually_listed(client, seller.key, SYMBOL, price=Decimal(31_000))
    await eventually_listed(client, buyer.key, SYMBOL, price=Decimal(29_000))

    depth = await client.depth(SYMBOL, 5)
    assert depth.symbol == SYMBOL
    assert [(level.price, level.quantity) for level in depth.bids] == [
        (Decimal(29_000), Decimal("0.1"))
    ]
    assert [(level.price, level.quantity) for level in depth.asks] == [
        (Decimal(31_000), Decimal("0.1"))
    ]

    await client.place_order(
        buyer.key, SYMBOL, "BUY", "LIMIT", Decimal("0.04"), Decimal(31_000), "IOC"
    )
    for _ in range(100):
        trades = await client.trades(SYMBOL)
        if trades:
            break
        await asyncio.sleep(0.02)
    assert [(t.price, t.qty) for t in trades] == [(Decimal(31_000), Decimal("0.04"))]
    assert not trades[0].is_buyer_maker

    (ticker,) = await client.ticker_24h(SYMBOL)
    assert ticker.symbol == SYMBOL
    assert ticker.last_price == Decimal(31_000)
    assert ticker.volume == Decimal("0.04")
    assert {t.symbol for t in await client.ticker_24h()} >= {"BTC_USDT", "ETH_USDT"}
    assert {t.symbol for t in await client.ticker_24h(window="7d")} >= {"BTC_USDT"}
    (price,) = await client.ticker_price(SYMBOL)
    assert (price.symbol, price.price) == (SYMBOL, Decimal(31_000))
    prices = {p.symbol: p.price for p in await client.ticker_price()}
    assert prices[SYMBOL] == Decimal(31_000)


async def test_exchange_info_and_pairs(opex: OpexClient) -> None:
    info = await opex.exchange_info()
    btc = info.by_native(SYMBOL)
    assert btc is not None
    assert btc.symbol == "BTCUSDT"
    assert (btc.price_step, btc.quantity_step) == (Decimal("0.01"), Decimal("0.000001"))
    pairs = {p.symbol: p for p in await opex.pairs()}
    pair = pairs[SYMBOL]
    assert pair.is_available
    assert (pair.min_order, pair.max_order) == (Decimal(10), Decimal(1_000_000))
    assert set(pair.order_types) == {"LIMIT", "MARKET"}
    assert (pair.price_step, pair.quantity_step) == (Decimal("0.01"), Decimal("0.000001"))


async def test_account_and_wallets(opex: OpexClient) -> None:
    user = await new_user(opex, usdt=Decimal("1234.5"))
    account = await opex.account(user.key)
    assert account.can_trade
    assert account.balance("USDT").free == Decimal("1234.5")
    assert account.balance("BTC").free == 0  # OPEX made every wallet at zero
    assets = {b.asset: b for b in await opex.wallet_assets(user.key)}
    assert assets["USDT"].free == Decimal("1234.5")
    assert set(assets) >= {"USDT", "BTC", "ETH"}
    (usdt,) = await opex.wallet_assets(user.key, "USDT")
    assert usdt.total == Decimal("1234.5")


async def test_refusals_carry_opex_codes(opex: OpexClient) -> None:
    user = await new_user(opex, usdt=Decimal(100))
    cases = [
        (Decimal(1), "GTC", 4001),  # insufficient balance
        (Decimal("0.0001"), "GTC", 4003),  # value below minOrder
        (Decimal("0.001"), None, 1020),  # a LIMIT order without timeInForce
    ]
    surfaces: tuple[Surface, ...] = ("v3", "opex")
    for surface in surfaces:
        client = opex.using(surface)
        for quantity, time_in_force, code in cases:
            with pytest.raises(OpexRefused) as refused:
                await client.place_order(
                    user.key, SYMBOL, "BUY", "LIMIT", quantity, Decimal(30_000), time_in_force
                )
            assert refused.value.code == code, (surface, quantity, time_in_force)
            assert refused.value.http_status == 400
    with pytest.raises(OpexRefused) as unknown:
        await opex.open_orders(user.key, "DOGE_USDT")  # no such /v3 alias
    assert (unknown.value.code, unknown.value.http_status) == (7002, 404)


async def test_pair_settings_open_a_new_pair(opex: OpexClient, control: Control) -> None:
    await control.add_pair("SOL_USDT", "0.01", "0.01")
    admin = opex.admin
    assert admin is not None
    pairs = {p.symbol: p for p in await opex.pairs(with_steps=False)}
    assert not pairs["SOL_USDT"].is_available
    assert pairs["SOL_USDT"].min_order == pairs["SOL_USDT"].max_order == 1
    user = await new_user(opex, usdt=Decimal(1000))
    with pytest.raises(OpexRefused) as closed:
        await opex.place_order(
            user.key, "SOL_USDT", "BUY", "LIMIT", Decimal(1), Decimal(100), "GTC"
        )
    assert closed.value.code == 6038

    setting = await opex.update_pair_setting(
        admin,
        "SOL_USDT",
        is_available=True,
        min_order=Decimal(10),
        max_order=Decimal(100_000),
        order_types=[OrderType.LIMIT, OrderType.MARKET],
    )
    assert setting.is_available
    assert set(setting.order_types) == {"LIMIT", "MARKET"}
    assert await opex.pair_setting(admin, "SOL_USDT") == setting
    await opex.place_order(user.key, "SOLUSDT", "BUY", "LIMIT", Decimal(1), Decimal(100), "GTC")
    listed = await eventually_listed(opex, user.key, "SOL_USDT", price=Decimal(100))
    assert listed.symbol == "SOL_USDT"


async def test_orders_are_listed_only_after_the_delay(opex: OpexClient, control: Control) -> None:
    """The "slow listings" fault: OPEX answers long before the order is listed."""
    await control.faults(listing_delay_ms=800)
    user = await new_user(opex, usdt=Decimal(1000))
    started = asyncio.get_running_loop().time()
    await opex.place_order(
        user.key, SYMBOL, "BUY", "LIMIT", Decimal("0.001"), Decimal(20_000), "GTC"
    )
    assert await opex.open_orders(user.key, SYMBOL) == []
    assert await opex.all_orders(user.key, SYMBOL) == []
    listed = await eventually_listed(opex, user.key, SYMBOL, price=Decimal(20_000))
    assert asyncio.get_running_loop().time() - started >= 0.7
    assert listed.status is OrderStatus.NEW
    assert LISTING_DELAY_MS < 800


async def test_v3_aliases_and_time_filters(opex: OpexClient) -> None:
    user = await new_user(opex, usdt=Decimal(1000))
    await opex.exchange_info()
    await opex.place_order(
        user.key, "btc-usdt", "BUY", "LIMIT", Decimal("0.001"), Decimal(20_000), "GTC"
    )
    order = await eventually_listed(opex, user.key, SYMBOL, price=Decimal(20_000))
    assert order.time is not None
    assert await opex.all_orders(user.key, SYMBOL, start_time=order.time, limit=5) == [order]
    later = int(order.time.timestamp() * 1000) + 1
    assert await opex.all_orders(user.key, SYMBOL, start_time=later) == []
