from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest

from services.opex_sandbox.domain import (
    FEE_ACCOUNT,
    ManualClock,
    MatchingEngine,
    OrderStatus,
    OrderType,
    PairRegistry,
    PlaceResult,
    Side,
    TimeInForce,
    Wallets,
)
from services.opex_sandbox.domain.errors import (
    CancelOrderNotAllowed,
    InvalidOrderType,
    InvalidQuantity,
    InvalidRequestParam,
    OpexError,
    OrderNotFound,
    PairIsNotAvailable,
    SubmitOrderForbiddenByAccountant,
    SymbolNotFound,
)

D = Decimal
BUY, SELL = Side.BUY, Side.SELL
GTC, IOC, FOK = TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK

ALICE = "00000000-0000-0000-0000-0000000a11ce"
BOB = "00000000-0000-0000-0000-000000000b0b"
CAROL = "00000000-0000-0000-0000-0000000ca201"
BTC = "BTC_USDT"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_700_000_000_000)


@pytest.fixture
def pairs() -> PairRegistry:
    return PairRegistry.with_defaults()


@pytest.fixture
def wallets() -> Wallets:
    return Wallets()


@pytest.fixture
def engine(pairs: PairRegistry, wallets: Wallets, clock: ManualClock) -> MatchingEngine:
    eng = MatchingEngine(pairs, wallets, clock)
    for user in (ALICE, BOB, CAROL):
        wallets.create_user(user)
        wallets.deposit(user, "BTC", D(10))
        wallets.deposit(user, "ETH", D(100))
        wallets.deposit(user, "USDT", D(1_000_000))
    return eng


Limit = Callable[..., PlaceResult]


@pytest.fixture
def limit(engine: MatchingEngine) -> Limit:
    """`limit(user, side, qty, price, tif=GTC, symbol=BTC)` with string numbers."""

    def _place(
        user: str,
        side: Side,
        qty: str,
        price: str,
        tif: TimeInForce = TimeInForce.GTC,
        symbol: str = BTC,
    ) -> PlaceResult:
        return engine.place(user, symbol, side, OrderType.LIMIT, tif, D(qty), D(price))

    return _place


def free(w: Wallets, user: str, asset: str) -> Decimal:
    return w.balance(user, asset).free


def locked(w: Wallets, user: str, asset: str) -> Decimal:
    return w.balance(user, asset).locked


def assert_error(exc: pytest.ExceptionInfo[OpexError], code: int, http_status: int) -> None:
    assert (exc.value.code, exc.value.http_status) == (code, http_status)


# -- validation and error codes ----------------------------------------------------------------


def test_place_when_symbol_unknown_then_7002_not_found(engine: MatchingEngine) -> None:
    with pytest.raises(SymbolNotFound) as exc:
        engine.place(ALICE, "DOGE_USDT", BUY, OrderType.LIMIT, GTC, D(1), D(1))
    assert_error(exc, 7002, 404)


@pytest.mark.parametrize(
    ("qty", "price", "tif", "param"),
    [
        ("1", None, GTC, "price"),
        ("1", "0", GTC, "price"),
        ("1", "-5", GTC, "price"),
        (None, "30000", GTC, "quantity"),
        ("1", "NaN", GTC, "price"),
        ("Infinity", "30000", GTC, "quantity"),
        ("0", "30000", GTC, "quantity"),
        ("1", "30000", None, "timeInForce"),
    ],
)
def test_place_when_limit_param_missing_or_not_positive_then_1020(
    engine: MatchingEngine,
    qty: str | None,
    price: str | None,
    tif: TimeInForce | None,
    param: str,
) -> None:
    with pytest.raises(InvalidRequestParam) as exc:
        engine.place(
            ALICE,
            BTC,
            BUY,
            OrderType.LIMIT,
            tif,
            None if qty is None else D(qty),
            None if price is None else D(price),
        )
    assert_error(exc, 1020, 400)
    assert exc.value.param == param


def test_place_when_market_has_neither_quantity_nor_quote_qty_then_1020(
    engine: MatchingEngine,
) -> None:
    with pytest.raises(InvalidRequestParam) as exc:
        engine.place(ALICE, BTC, BUY, OrderType.MARKET, IOC, None, D(30000))
    assert exc.value.param == "quoteOrderQty"


def test_place_when_stop_loss_limit_without_stop_price_then_1020(engine: MatchingEngine) -> None:
    with pytest.raises(InvalidRequestParam) as exc:
        engine.place(ALICE, BTC, BUY, OrderType.STOP_LOSS_LIMIT, GTC, D(1), D(30000))
    assert exc.value.param == "stopPrice"


def test_place_when_pair_new_then_6038_pair_unavailable(engine: MatchingEngine) -> None:
    pair = engine.add_pair("SOL_USDT", D("0.01"), D("0.01"))
    assert (pair.is_available, pair.min_order, pair.max_order) == (False, D(1), D(1))
    with pytest.raises(PairIsNotAvailable) as exc:
        engine.place(ALICE, "SOL_USDT", BUY, OrderType.LIMIT, GTC, D(1), D(1))
    assert_error(exc, 6038, 400)


def test_place_when_new_pair_configured_then_accepted(engine: MatchingEngine) -> None:
    engine.add_pair("SOL_USDT", D("0.01"), D("0.01"))
    engine.pairs.configure("SOL_USDT", is_available=True, min_order=D(1), max_order=D(1000))
    engine.wallets.deposit(ALICE, "USDT", D(100))
    result = engine.place(ALICE, "SOL_USDT", BUY, OrderType.LIMIT, GTC, D(2), D(20))
    assert result.order.status is OrderStatus.NEW
    assert locked(engine.wallets, ALICE, "USDT") == D(40)
    assert engine.wallets.balance(ALICE, "SOL").total == 0


def test_place_when_type_not_allowed_on_pair_then_4002(engine: MatchingEngine) -> None:
    engine.pairs.configure(BTC, order_types={OrderType.LIMIT})
    with pytest.raises(InvalidOrderType) as exc:
        engine.place(ALICE, BTC, BUY, OrderType.MARKET, IOC, D(1), D(30000))
    assert_error(exc, 4002, 400)


def test_place_when_stop_type_and_only_market_allowed_then_4002(engine: MatchingEngine) -> None:
    engine.pairs.configure(BTC, order_types={OrderType.MARKET})
    with pytest.raises(InvalidOrderType):
        engine.place(
            ALICE, BTC, BUY, OrderType.TAKE_PROFIT_LIMIT, GTC, D(1), D(30000), stop_price=D(1)
        )


@pytest.mark.parametrize(("qty", "price"), [("0.0003", "30000"), ("40", "30000")])
def test_place_when_value_outside_min_max_then_4003(
    engine: MatchingEngine, qty: str, price: str
) -> None:
    engine.wallets.deposit(ALICE, "USDT", D(10_000_000))
    with pytest.raises(InvalidQuantity) as exc:
        engine.place(ALICE, BTC, BUY, OrderType.LIMIT, GTC, D(qty), D(price))
    assert_error(exc, 4003, 400)


def test_place_when_value_exactly_min_then_accepted(limit: Limit) -> None:
    assert limit(ALICE, BUY, "0.001", "10000").order.status is OrderStatus.NEW


def test_place_when_market_without_price_then_4003_as_opex(engine: MatchingEngine) -> None:
    with pytest.raises(InvalidQuantity):
        engine.place(ALICE, BTC, BUY, OrderType.MARKET, IOC, D("0.1"))


def test_place_when_market_with_quote_qty_only_then_4003_as_opex(engine: MatchingEngine) -> None:
    with pytest.raises(InvalidQuantity):
        engine.place(ALICE, BTC, BUY, OrderType.MARKET, IOC, None, D(30000), quote_order_qty=D(100))


def test_place_when_stop_loss_without_price_then_4003(engine: MatchingEngine) -> None:
    with pytest.raises(InvalidQuantity):
        engine.place(ALICE, BTC, SELL, OrderType.STOP_LOSS, None, D(1), stop_price=D(29000))


def test_place_when_buy_exceeds_free_quote_then_4001_and_nothing_changes(
    engine: MatchingEngine,
) -> None:
    w = engine.wallets
    w.create_user("poor")
    w.deposit("poor", "USDT", D(100))
    with pytest.raises(SubmitOrderForbiddenByAccountant) as exc:
        engine.place("poor", BTC, BUY, OrderType.LIMIT, GTC, D("0.01"), D("10000.01"))
    assert_error(exc, 4001, 400)
    assert (free(w, "poor", "USDT"), locked(w, "poor", "USDT")) == (D(100), D(0))
    assert engine.all_orders("poor", BTC) == []


def test_place_when_buy_costs_exactly_free_quote_then_accepted_without_fee_reserve(
    engine: MatchingEngine,
) -> None:
    w = engine.wallets
    w.create_user("exact")
    w.deposit("exact", "USDT", D(100))
    engine.place("exact", BTC, BUY, OrderType.LIMIT, GTC, D("0.01"), D("10000"))
    assert (free(w, "exact", "USDT"), locked(w, "exact", "USDT")) == (D(0), D(100))


def test_place_when_sell_exceeds_free_base_then_4001(engine: MatchingEngine) -> None:
    with pytest.raises(SubmitOrderForbiddenByAccountant):
        engine.place(ALICE, BTC, SELL, OrderType.LIMIT, GTC, D(11), D(30000))


def test_place_when_user_unknown_then_4001(engine: MatchingEngine) -> None:
    with pytest.raises(SubmitOrderForbiddenByAccountant):
        engine.place("nobody", BTC, BUY, OrderType.LIMIT, GTC, D(1), D(30000))


@pytest.mark.parametrize(
    ("qty", "price", "param"),
    [("0.1", "30000.001", "price"), ("0.0000001", "300000", "quantity")],
)
def test_place_when_not_multiple_of_step_then_1020(
    engine: MatchingEngine, qty: str, price: str, param: str
) -> None:
    engine.pairs.configure(BTC, min_order=D(0))
    with pytest.raises(InvalidRequestParam) as exc:
        engine.place(ALICE, BTC, BUY, OrderType.LIMIT, GTC, D(qty), D(price))
    assert exc.value.param == param
    assert locked(engine.wallets, ALICE, "USDT") == 0


def test_place_when_price_has_fewer_decimals_then_stored_at_step_precision(limit: Limit) -> None:
    order = limit(ALICE, BUY, "0.1", "30000.1").order
    assert str(order.price) == "30000.10"
    assert str(order.orig_qty) == "0.100000"


# -- engine-level rejections -------------------------------------------------------------------


def test_place_when_market_gtc_then_rejected_without_id_and_funds_released(
    engine: MatchingEngine,
) -> None:
    result = engine.place(ALICE, BTC, BUY, OrderType.MARKET, GTC, D("0.1"), D(30000))
    assert result.rejected
    assert result.order.status is OrderStatus.REJECTED
    assert result.order.order_id == 0
    assert result.order.reject_reason == "ORDER_TYPE_NOT_MATCHED_MATCHC"
    assert locked(engine.wallets, ALICE, "USDT") == 0
    assert free(engine.wallets, ALICE, "USDT") == D(1_000_000)
    assert engine.all_orders(ALICE, BTC) == []


def test_place_when_fok_in_opex_mode_then_rejected(engine: MatchingEngine, limit: Limit) -> None:
    limit(BOB, SELL, "1", "30000")
    result = limit(ALICE, BUY, "0.5", "30000", FOK)
    assert result.order.status is OrderStatus.REJECTED
    assert result.trades == []
    assert locked(engine.wallets, ALICE, "USDT") == 0


def test_place_when_stop_loss_limit_without_time_in_force_then_1020(
    engine: MatchingEngine,
) -> None:
    with pytest.raises(InvalidRequestParam) as exc:
        engine.place(
            ALICE, BTC, BUY, OrderType.STOP_LOSS_LIMIT, None, D(1), D(30000), stop_price=D(1)
        )
    assert exc.value.param == "timeInForce"


def test_place_when_limit_maker_without_time_in_force_then_engine_rejects(
    engine: MatchingEngine,
) -> None:
    # the API needs no timeInForce for LIMIT_MAKER; OPEX's engine rejects a missing one
    result = engine.place(ALICE, BTC, BUY, OrderType.LIMIT_MAKER, None, D(1), D(30000))
    assert result.order.status is OrderStatus.REJECTED
    assert result.order.reject_reason == "OPERATION_NOT_MATCHED_MATCHC"
    assert locked(engine.wallets, ALICE, "USDT") == 0


def test_place_when_stop_loss_limit_then_plain_resting_limit(engine: MatchingEngine) -> None:
    result = engine.place(
        ALICE, BTC, BUY, OrderType.STOP_LOSS_LIMIT, GTC, D(1), D(30000), stop_price=D(31000)
    )
    assert result.order.type is OrderType.LIMIT
    assert engine.open_orders(ALICE, BTC) == [result.order]


@pytest.fixture
def fok_engine(wallets: Wallets, clock: ManualClock) -> MatchingEngine:
    eng = MatchingEngine(PairRegistry.with_defaults(), wallets, clock, fok_supported=True)
    for user in (ALICE, BOB):
        wallets.create_user(user)
        wallets.deposit(user, "BTC", D(10))
        wallets.deposit(user, "USDT", D(1_000_000))
    return eng


def test_place_when_fok_supported_and_fillable_then_filled(fok_engine: MatchingEngine) -> None:
    e = fok_engine
    e.place(BOB, BTC, SELL, OrderType.LIMIT, GTC, D("0.3"), D(30000))
    e.place(BOB, BTC, SELL, OrderType.LIMIT, GTC, D("0.3"), D(30010))
    result = e.place(ALICE, BTC, BUY, OrderType.LIMIT, FOK, D("0.5"), D(30010))
    assert result.order.status is OrderStatus.FILLED
    assert [t.qty for t in result.trades] == [D("0.3"), D("0.2")]


def test_place_when_fok_supported_and_not_fillable_then_expired_and_nothing_traded(
    fok_engine: MatchingEngine,
) -> None:
    e = fok_engine
    e.place(BOB, BTC, SELL, OrderType.LIMIT, GTC, D("0.3"), D(30000))
    e.place(BOB, BTC, SELL, OrderType.LIMIT, GTC, D("0.3"), D(30020))
    result = e.place(ALICE, BTC, BUY, OrderType.LIMIT, FOK, D("0.5"), D(30010))
    assert result.order.status is OrderStatus.EXPIRED
    assert result.trades == []
    assert e.depth(BTC).asks == [(D(30000), D("0.3")), (D(30020), D("0.3"))]
    assert locked(e.wallets, ALICE, "USDT") == 0
    with pytest.raises(CancelOrderNotAllowed):
        e.cancel(ALICE, BTC, result.order.order_id)


def test_place_when_fok_market_buy_beyond_budget_then_expired(fok_engine: MatchingEngine) -> None:
    e = fok_engine
    e.place(BOB, BTC, SELL, OrderType.LIMIT, GTC, D(1), D(31000))
    result = e.place(ALICE, BTC, BUY, OrderType.MARKET, FOK, D(1), D(30000))
    assert result.order.status is OrderStatus.EXPIRED


# -- resting, locking, matching ----------------------------------------------------------------


def test_place_when_buy_does_not_cross_then_rests_new_and_locks_price_times_qty(
    engine: MatchingEngine, limit: Limit, clock: ManualClock
) -> None:
    result = limit(ALICE, BUY, "0.5", "30000")
    order = result.order
    assert (order.status, order.order_id, order.time, order.update_time) == (
        OrderStatus.NEW,
        1,
        clock.now,
        clock.now,
    )
    assert result.trades == []
    assert locked(engine.wallets, ALICE, "USDT") == D(15000)
    assert free(engine.wallets, ALICE, "USDT") == D(985000)
    assert engine.open_orders(ALICE, BTC) == [order]


def test_place_when_sell_does_not_cross_then_locks_base_quantity(
    engine: MatchingEngine, limit: Limit
) -> None:
    limit(ALICE, SELL, "0.5", "30000")
    assert locked(engine.wallets, ALICE, "BTC") == D("0.5")
    assert locked(engine.wallets, ALICE, "USDT") == 0


def test_place_when_crossing_then_trade_at_maker_price_and_fees_in_received_asset(
    engine: MatchingEngine, limit: Limit
) -> None:
    w = engine.wallets
    maker = limit(BOB, SELL, "0.5", "30000").order
    result = limit(ALICE, BUY, "0.2", "30100")
    taker = result.order
    [trade] = result.trades
    assert (trade.price, trade.qty, trade.quote_qty) == (D(30000), D("0.2"), D(6000))
    assert (trade.buyer, trade.seller, trade.is_buyer_maker) == (ALICE, BOB, False)
    assert trade.buyer_commission == D("0.0004")  # taker 0.2% of 0.2 BTC
    assert trade.seller_commission == D(6)  # maker 0.1% of 6000 USDT
    assert (taker.status, taker.executed_qty, taker.cummulative_quote_qty) == (
        OrderStatus.FILLED,
        D("0.2"),
        D(6000),
    )
    assert (maker.status, maker.executed_qty) == (OrderStatus.PARTIALLY_FILLED, D("0.2"))
    # taker: paid 6000 USDT, the 20 USDT of price improvement released, got 0.1996 BTC
    assert (free(w, ALICE, "USDT"), locked(w, ALICE, "USDT")) == (D(994000), D(0))
    assert free(w, ALICE, "BTC") == D("10.1996")
    # maker: 0.3 BTC still locked, received 5994 USDT
    assert (free(w, BOB, "BTC"), locked(w, BOB, "BTC")) == (D("9.5"), D("0.3"))
    assert free(w, BOB, "USDT") == D(1_005_994)
    assert free(w, FEE_ACCOUNT, "BTC") == D("0.0004")
    assert free(w, FEE_ACCOUNT, "USDT") == D(6)
    assert w.is_conserved()
    assert engine.audit() == []


def test_place_when_sell_taker_crosses_bid_then_taker_fee_in_quote(
    engine: MatchingEngine, limit: Limit
) -> None:
    limit(BOB, BUY, "1", "30000")
    [trade] = limit(ALICE, SELL, "1", "29000").trades
    assert (trade.price, trade.is_buyer_maker) == (D(30000), True)
    assert trade.seller_commission == D(60)  # taker 0.2% of 30000
    assert trade.buyer_commission == D("0.001")  # maker 0.1% of 1 BTC
    assert free(engine.wallets, ALICE, "USDT") == D(1_000_000 + 30000 - 60)


def test_place_when_gtc_partially_fills_then_rest_rests_and_keeps_improvement_locked(
    engine: MatchingEngine, limit: Limit
) -> None:
    limit(BOB, SELL, "0.1", "29000")
    order = limit(ALICE, BUY, "0.3", "30000").order
    assert order.status is OrderStatus.PARTIALLY_FILLED
    assert order.remaining_qty == D("0.2")
    # 9000 locked, 2900 spent: OPEX keeps the 100 of improvement until the order ends
    assert order.locked == D(6100)
    assert locked(engine.wallets, ALICE, "USDT") == D(6100)
    assert engine.depth(BTC).bids == [(D(30000), D("0.2"))]
    engine.cancel(ALICE, BTC, order.order_id)
    assert locked(engine.wallets, ALICE, "USDT") == 0
    assert free(engine.wallets, ALICE, "USDT") == D(1_000_000 - 2900)


def test_place_when_ioc_partially_fills_then_canceled_and_rest_released(
    engine: MatchingEngine, limit: Limit
) -> None:
    limit(BOB, SELL, "0.1", "30000")
    result = limit(ALICE, BUY, "0.3", "30000", IOC)
    assert result.order.status is OrderStatus.CANCELED
    assert result.order.executed_qty == D("0.1")
    assert locked(engine.wallets, ALICE, "USDT") == 0
    assert engine.open_orders(ALICE, BTC) == []
    assert engine.depth(BTC).bids == []


def test_place_when_ioc_finds_no_liquidity_then_canceled_unfilled(limit: Limit) -> None:
    result = limit(ALICE, BUY, "0.3", "30000", IOC)
    assert (result.order.status, result.order.executed_qty) == (OrderStatus.CANCELED, D(0))


def test_place_when_market_ioc_then_walks_book_whatever_its_price(
    engine: MatchingEngine, limit: Limit
) -> None:
    limit(BOB, BUY, "0.1", "30000")
    limit(BOB, BUY, "0.1", "20000")
    result = engine.place(ALICE, BTC, SELL, OrderType.MARKET, IOC, D("0.15"), D(31000))
    assert [(t.price, t.qty) for t in result.trades] == [
        (D(30000), D("0.1")),
        (D(20000), D("0.05")),
    ]
    assert result.order.status is OrderStatus.FILLED
    assert result.order.type is OrderType.MARKET


def test_place_when_market_buy_runs_out_of_locked_budget_then_stops_and_cancels(
    engine: MatchingEngine, limit: Limit
) -> None:
    limit(BOB, SELL, "0.1", "30000")
    limit(BOB, SELL, "1", "40000")
    # locks 0.3 x 30000 = 9000: 3000 for the first level, 6000 buys 0.15 at 40000
    result = engine.place(ALICE, BTC, BUY, OrderType.MARKET, IOC, D("0.3"), D(30000))
    assert [(t.price, t.qty) for t in result.trades] == [
        (D(30000), D("0.1")),
        (D(40000), D("0.15")),
    ]
    assert result.order.status is OrderStatus.CANCELED
    assert locked(engine.wallets, ALICE, "USDT") == 0
    assert free(engine.wallets, ALICE, "USDT") == D(1_000_000 - 9000)
    assert engine.audit() == []


def test_place_when_same_price_then_earlier_order_fills_first(
    engine: MatchingEngine, limit: Limit
) -> None:
    first = limit(BOB, SELL, "0.1", "30000").order
    second = limit(CAROL, SELL, "0.1", "30000").order
    trades = limit(ALICE, BUY, "0.15", "30000").trades
    assert [(t.seller_order_id, t.qty) for t in trades] == [
        (first.order_id, D("0.1")),
        (second.order_id, D("0.05")),
    ]
    assert second.status is OrderStatus.PARTIALLY_FILLED


def test_place_when_several_levels_then_best_price_fills_first(limit: Limit) -> None:
    limit(BOB, SELL, "0.1", "30020")
    limit(CAROL, SELL, "0.1", "30010")
    limit(BOB, SELL, "0.1", "30000")
    trades = limit(ALICE, BUY, "0.3", "30020").trades
    assert [t.price for t in trades] == [D(30000), D(30010), D(30020)]


def test_place_when_limit_price_reached_then_stops_before_worse_levels(limit: Limit) -> None:
    limit(BOB, SELL, "0.1", "30000")
    limit(BOB, SELL, "0.1", "30050")
    result = limit(ALICE, BUY, "0.3", "30010")
    assert [t.price for t in result.trades] == [D(30000)]
    assert result.order.status is OrderStatus.PARTIALLY_FILLED


def test_place_when_user_crosses_own_order_then_self_trade_happens(
    engine: MatchingEngine, limit: Limit
) -> None:
    limit(ALICE, SELL, "0.1", "30000")
    [trade] = limit(ALICE, BUY, "0.1", "30000").trades
    assert trade.buyer == trade.seller == ALICE
    w = engine.wallets
    assert free(w, ALICE, "BTC") == D(10) - D("0.0002")  # paid the taker fee in BTC
    assert free(w, ALICE, "USDT") == D(1_000_000) - D(3)  # and the maker fee in USDT
    assert [t.id for t in engine.user_trades(ALICE, BTC)] == [trade.trade_id]


def test_place_when_orders_on_two_pairs_then_ids_count_per_pair(limit: Limit) -> None:
    ids = [
        limit(ALICE, BUY, "0.1", "30000").order.order_id,
        limit(ALICE, BUY, "1", "2000", symbol="ETH_USDT").order.order_id,
        limit(ALICE, BUY, "0.1", "30000").order.order_id,
    ]
    assert ids == [1, 1, 2]


def test_place_when_many_trades_then_trade_ids_increase(limit: Limit) -> None:
    for _ in range(3):
        limit(BOB, SELL, "0.1", "30000")
    trades = limit(ALICE, BUY, "0.3", "30000").trades
    assert [t.trade_id for t in trades] == [1, 2, 3]


def test_place_when_maker_fully_filled_after_improved_partial_then_leftover_released(
    engine: MatchingEngine, limit: Limit
) -> None:
    limit(BOB, SELL, "0.1", "29000")
    resting = limit(ALICE, BUY, "0.2", "30000").order  # 100 USDT improvement kept locked
    limit(BOB, SELL, "0.1", "30000")  # fills the rest as maker
    assert resting.status is OrderStatus.FILLED
    assert resting.locked == 0
    assert locked(engine.wallets, ALICE, "USDT") == 0
    assert engine.audit() == []


# -- canceling ---------------------------------------------------------------------------------


def test_cancel_when_working_then_canceled_and_funds_released(
    engine: MatchingEngine, limit: Limit, clock: ManualClock
) -> None:
    order = limit(ALICE, BUY, "0.5", "30000").order
    clock.advance(5)
    canceled = engine.cancel(ALICE, BTC, order.order_id)
    assert canceled is order
    assert (order.status, order.update_time) == (OrderStatus.CANCELED, clock.now)
    assert locked(engine.wallets, ALICE, "USDT") == 0
    assert engine.open_orders(ALICE, BTC) == []
    assert engine.depth(BTC).bids == []


def test_cancel_when_already_canceled_then_echoed(engine: MatchingEngine, limit: Limit) -> None:
    order = limit(ALICE, BUY, "0.5", "30000").order
    engine.cancel(ALICE, BTC, order.order_id)
    assert engine.cancel(ALICE, BTC, order.order_id).status is OrderStatus.CANCELED


def test_cancel_when_filled_then_7006_forbidden(engine: MatchingEngine, limit: Limit) -> None:
    limit(BOB, SELL, "0.1", "30000")
    order = limit(ALICE, BUY, "0.1", "30000").order
    with pytest.raises(CancelOrderNotAllowed) as exc:
        engine.cancel(ALICE, BTC, order.order_id)
    assert_error(exc, 7006, 403)


def test_cancel_when_ioc_remainder_canceled_then_echoed(
    engine: MatchingEngine, limit: Limit
) -> None:
    order = limit(ALICE, BUY, "0.1", "30000", IOC).order
    assert engine.cancel(ALICE, BTC, order.order_id) is order


@pytest.mark.parametrize("owner", [ALICE, BOB])
def test_cancel_when_order_unknown_or_not_owned_then_7001(
    engine: MatchingEngine, limit: Limit, owner: str
) -> None:
    order = limit(owner, BUY, "0.1", "30000").order
    order_id = order.order_id + 1 if owner == ALICE else order.order_id
    with pytest.raises(OrderNotFound) as exc:
        engine.cancel(ALICE, BTC, order_id)
    assert_error(exc, 7001, 404)


def test_cancel_when_partially_filled_then_level_shrinks_by_remainder(
    engine: MatchingEngine, limit: Limit
) -> None:
    order = limit(BOB, SELL, "0.5", "30000").order
    limit(BOB, SELL, "0.5", "30000")
    limit(ALICE, BUY, "0.2", "30000")
    assert engine.depth(BTC).asks == [(D(30000), D("0.8"))]
    engine.cancel(BOB, BTC, order.order_id)
    assert engine.depth(BTC).asks == [(D(30000), D("0.5"))]
    assert locked(engine.wallets, BOB, "BTC") == D("0.5")
    assert engine.audit() == []


def test_cancel_when_canceled_order_was_first_in_queue_then_next_one_fills(
    engine: MatchingEngine, limit: Limit
) -> None:
    first = limit(BOB, SELL, "0.1", "30000").order
    second = limit(CAROL, SELL, "0.1", "30000").order
    engine.cancel(BOB, BTC, first.order_id)
    [trade] = limit(ALICE, BUY, "0.1", "30000").trades
    assert trade.seller_order_id == second.order_id


def test_cancel_open_orders_when_several_then_all_canceled(
    engine: MatchingEngine, limit: Limit
) -> None:
    limit(ALICE, BUY, "0.1", "30000")
    limit(ALICE, SELL, "0.1", "31000")
    limit(BOB, BUY, "0.1", "30000")
    canceled = engine.cancel_open_orders(ALICE, BTC)
    assert [o.status for o in canceled] == [OrderStatus.CANCELED] * 2
    assert engine.open_orders(ALICE, BTC) == []
    assert len(engine.open_orders(BOB, BTC)) == 1
    assert engine.audit() == []


# -- queries -----------------------------------------------------------------------------------


def test_get_order_when_own_then_returned_else_7001(engine: MatchingEngine, limit: Limit) -> None:
    order = limit(ALICE, BUY, "0.1", "30000").order
    assert engine.get_order(ALICE, BTC, order.order_id) is order
    with pytest.raises(OrderNotFound):
        engine.get_order(BOB, BTC, order.order_id)
    with pytest.raises(SymbolNotFound):
        engine.get_order(ALICE, "XRPUSDT", order.order_id)


def test_open_orders_when_no_symbol_then_all_pairs_oldest_first(
    engine: MatchingEngine, limit: Limit, clock: ManualClock
) -> None:
    a = limit(ALICE, BUY, "0.1", "30000").order
    clock.advance(1)
    b = limit(ALICE, BUY, "1", "2000", symbol="ETH_USDT").order
    assert engine.open_orders(ALICE) == [a, b]
    assert engine.open_orders(ALICE, "ETH_USDT") == [b]


def test_all_orders_when_window_and_limit_then_newest_update_first(
    engine: MatchingEngine, limit: Limit, clock: ManualClock
) -> None:
    orders = []
    for _ in range(4):
        orders.append(limit(ALICE, BUY, "0.1", "30000").order)
        clock.advance(10)
    t0 = orders[0].time
    assert engine.all_orders(ALICE, BTC) == orders[::-1]
    assert engine.all_orders(ALICE, BTC, start_time=t0 + 10, end_time=t0 + 30) == [
        orders[2],
        orders[1],
    ]
    assert engine.all_orders(ALICE, BTC, limit=2) == [orders[3], orders[2]]
    engine.cancel(ALICE, BTC, orders[0].order_id)  # now the most recently updated
    assert engine.all_orders(ALICE, BTC, limit=1) == [orders[0]]


def test_user_trades_when_from_id_then_strictly_greater_newest_first(
    engine: MatchingEngine, limit: Limit, clock: ManualClock
) -> None:
    for _ in range(3):
        limit(BOB, SELL, "0.1", "30000")
        limit(ALICE, BUY, "0.1", "30000")
        clock.advance(10)
    mine = engine.user_trades(ALICE, BTC)
    assert [t.id for t in mine] == [3, 2, 1]
    assert [t.id for t in engine.user_trades(ALICE, BTC, from_id=1)] == [3, 2]
    assert [t.id for t in engine.user_trades(ALICE, BTC, limit=1)] == [3]
    start = mine[-1].time
    assert [t.id for t in engine.user_trades(ALICE, BTC, start_time=start + 10)] == [3, 2]
    assert [t.id for t in engine.user_trades(ALICE, BTC, end_time=start + 10)] == [1]
    assert engine.user_trades(CAROL, BTC) == []


def test_user_trades_when_taker_and_maker_then_each_sees_own_side(
    engine: MatchingEngine, limit: Limit
) -> None:
    sell = limit(BOB, SELL, "0.1", "30000").order
    buy = limit(ALICE, BUY, "0.1", "30000").order
    [a] = engine.user_trades(ALICE, BTC)
    [b] = engine.user_trades(BOB, BTC)
    assert (a.order_id, a.is_buyer, a.is_maker, a.commission, a.commission_asset) == (
        buy.order_id,
        True,
        False,
        D("0.0002"),
        "BTC",
    )
    assert (b.order_id, b.is_buyer, b.is_maker, b.commission, b.commission_asset) == (
        sell.order_id,
        False,
        True,
        D(3),
        "USDT",
    )
    assert (a.price, a.qty, a.quote_qty, a.id) == (D(30000), D("0.1"), D(3000), b.id)


def test_depth_when_levels_then_aggregated_bids_desc_asks_asc_limited(
    engine: MatchingEngine, limit: Limit
) -> None:
    limit(ALICE, BUY, "0.1", "29990")
    limit(BOB, BUY, "0.2", "29990")
    limit(ALICE, BUY, "0.1", "29995")
    limit(ALICE, BUY, "0.1", "29980")
    limit(BOB, SELL, "0.3", "30010")
    limit(CAROL, SELL, "0.1", "30005")
    before = engine.depth(BTC).last_update_id
    depth = engine.depth(BTC, limit=2)
    assert depth.bids == [(D(29995), D("0.1")), (D(29990), D("0.3"))]
    assert depth.asks == [(D(30005), D("0.1")), (D(30010), D("0.3"))]
    limit(ALICE, BUY, "0.1", "29000")
    assert engine.depth(BTC).last_update_id > before


def test_ticker_when_trades_in_and_out_of_window_then_stats_of_window(
    engine: MatchingEngine, limit: Limit, clock: ManualClock
) -> None:
    limit(BOB, SELL, "0.1", "25000")
    limit(ALICE, BUY, "0.1", "25000")  # trade 1, will fall out of the window
    clock.advance(2 * 86_400_000)
    for price in ("30000", "31000", "29000"):
        limit(BOB, SELL, "0.1", price)
        limit(ALICE, BUY, "0.1", price)
        clock.advance(1000)
    limit(ALICE, BUY, "0.2", "28000")
    limit(BOB, SELL, "0.3", "32000")
    t = engine.ticker(BTC)
    assert (t.open_price, t.high_price, t.low_price, t.last_price) == (
        D(30000),
        D(31000),
        D(29000),
        D(29000),
    )
    assert (t.volume, t.quote_volume, t.count) == (D("0.3"), D(9000), 3)
    assert (t.first_id, t.last_id) == (2, 4)
    assert (t.bid_price, t.bid_qty, t.ask_price, t.ask_qty) == (
        D(28000),
        D("0.2"),
        D(32000),
        D("0.3"),
    )
    assert t.price_change == D(-1000)
    assert t.price_change_percent == D("-3.33")
    assert t.weighted_avg_price == D(30000)
    assert engine.last_price(BTC) == D(29000)


def test_ticker_when_no_trades_then_zero_prices(engine: MatchingEngine) -> None:
    t = engine.ticker("ETH_USDT")
    assert (t.last_price, t.open_price, t.volume, t.count) == (D(0), D(0), D(0), 0)
    assert engine.last_price("ETH_USDT") is None


def test_recent_trades_when_limit_then_last_ones_oldest_first(
    limit: Limit, engine: MatchingEngine
) -> None:
    for price in ("30000", "30001", "30002"):
        limit(BOB, SELL, "0.1", price)
        limit(ALICE, BUY, "0.1", price)
    assert [t.price for t in engine.recent_trades(BTC, 2)] == [D(30001), D(30002)]


def test_best_bid_and_ask_when_book_then_top_levels(engine: MatchingEngine, limit: Limit) -> None:
    assert engine.best_bid(BTC) is None
    limit(ALICE, BUY, "0.1", "29000")
    limit(BOB, SELL, "0.2", "31000")
    assert engine.best_bid(BTC) == (D(29000), D("0.1"))
    assert engine.best_ask(BTC) == (D(31000), D("0.2"))


def test_place_when_enums_given_as_strings_then_same_as_enums(engine: MatchingEngine) -> None:
    result = engine.place(ALICE, BTC, "SELL", "LIMIT", "GTC", D("0.1"), D(30000))  # type: ignore[arg-type]
    assert (result.order.side, result.order.type, result.order.time_in_force) == (
        SELL,
        OrderType.LIMIT,
        GTC,
    )
    assert locked(engine.wallets, ALICE, "BTC") == D("0.1")
    with pytest.raises(InvalidRequestParam) as exc:
        engine.place(ALICE, BTC, "SIDEWAYS", "LIMIT", "GTC", D("0.1"), D(30000))  # type: ignore[arg-type]
    assert exc.value.param == "side"
