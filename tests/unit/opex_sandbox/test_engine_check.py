"""`MatchingEngine.check`: the synchronous checks of `place`, without side effects; and
`MatchingEngine.trade`."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.opex_sandbox.domain import (
    ManualClock,
    MatchingEngine,
    OpexError,
    OrderStatus,
    OrderType,
    PairRegistry,
    Side,
    TimeInForce,
    Wallets,
)

D = Decimal
ALICE = "00000000-0000-0000-0000-0000000a11ce"
BOB = "00000000-0000-0000-0000-000000000b0b"
BTC = "BTC_USDT"


def _engine() -> MatchingEngine:
    wallets = Wallets()
    engine = MatchingEngine(PairRegistry.with_defaults(), wallets, ManualClock())
    for user in (ALICE, BOB):
        wallets.create_user(user)
        wallets.deposit(user, "BTC", D(1))
        wallets.deposit(user, "USDT", D(50_000))
    return engine


def _snapshot(engine: MatchingEngine) -> tuple[object, ...]:
    balances = tuple((b.user, b.asset, b.free, b.locked) for b in engine.wallets.accounts.values())
    depth = engine.depth(BTC)
    return balances, tuple(depth.bids), tuple(depth.asks), depth.last_update_id


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"symbol": "DOGE_USDT"}, 7002),
        ({"price": None}, 1020),
        ({"quantity": D(0)}, 1020),
        ({"time_in_force": None}, 1020),
        ({"order_type": OrderType.STOP_LOSS_LIMIT}, 1020),  # no stopPrice
        ({"price": D("30000.001")}, 1020),  # off the price step
        ({"quantity": D("0.0100001")}, 1020),  # off the quantity step
        ({"quantity": D("0.0001"), "price": D(1)}, 4003),  # below minOrder
        ({"quantity": D(2)}, 4001),  # 60,000 USDT > 50,000
        ({"side": Side.SELL, "quantity": D(2)}, 4001),  # 2 BTC > 1
        ({"order_type": OrderType.MARKET, "price": None}, 4003),  # MARKET without price
    ],
)
def test_check_when_order_is_refused_then_same_error_as_place_and_nothing_changes(
    kwargs: dict[str, object], code: int
) -> None:
    engine = _engine()
    order: dict[str, object] = {
        "user": ALICE,
        "symbol": BTC,
        "side": Side.BUY,
        "order_type": OrderType.LIMIT,
        "time_in_force": TimeInForce.GTC,
        "quantity": D("0.01"),
        "price": D(30_000),
    } | kwargs
    before = _snapshot(engine)
    with pytest.raises(OpexError) as checked:
        engine.check(**order)  # type: ignore[arg-type]
    assert checked.value.code == code
    assert _snapshot(engine) == before
    with pytest.raises(OpexError) as placed:
        engine.place(**order)  # type: ignore[arg-type]
    assert placed.value.code == code


def test_check_when_pair_unavailable_or_type_not_allowed_then_6038_and_4002() -> None:
    engine = _engine()
    engine.pairs.configure(BTC, order_types=[OrderType.LIMIT])
    with pytest.raises(OpexError) as not_allowed:
        engine.check(ALICE, BTC, Side.BUY, OrderType.MARKET, TimeInForce.IOC, D("0.01"), D(30_000))
    assert not_allowed.value.code == 4002
    engine.pairs.configure(BTC, is_available=False)
    with pytest.raises(OpexError) as closed:
        engine.check(ALICE, BTC, Side.BUY, OrderType.LIMIT, TimeInForce.GTC, D("0.01"), D(30_000))
    assert closed.value.code == 6038


def test_check_when_order_is_valid_then_passes_and_changes_nothing() -> None:
    engine = _engine()
    before = _snapshot(engine)
    engine.check(ALICE, BTC, Side.BUY, OrderType.LIMIT, TimeInForce.GTC, D("0.01"), D(30_000))
    # engine-level refusals are not checks: MARKET+GTC passes check, then place rejects it
    engine.check(ALICE, BTC, Side.BUY, OrderType.MARKET, TimeInForce.GTC, D("0.01"), D(30_000))
    assert _snapshot(engine) == before
    result = engine.place(
        ALICE, BTC, Side.BUY, OrderType.MARKET, TimeInForce.GTC, D("0.01"), D(30_000)
    )
    assert result.order.status is OrderStatus.REJECTED


@settings(max_examples=200, deadline=None)
@given(
    side=st.sampled_from([Side.BUY, Side.SELL]),
    order_type=st.sampled_from(list(OrderType)),
    tif=st.sampled_from([None, *TimeInForce]),
    quantity=st.one_of(st.none(), st.decimals(min_value=-1, max_value=3, places=7)),
    price=st.one_of(st.none(), st.decimals(min_value=-1, max_value=40_000, places=3)),
    stop=st.one_of(st.none(), st.decimals(min_value=0, max_value=40_000, places=2)),
)
def test_check_when_any_order_then_raises_exactly_when_place_raises(
    side: Side,
    order_type: OrderType,
    tif: TimeInForce | None,
    quantity: Decimal | None,
    price: Decimal | None,
    stop: Decimal | None,
) -> None:
    engine = _engine()
    before = _snapshot(engine)
    checked: int | None = None
    try:
        engine.check(ALICE, BTC, side, order_type, tif, quantity, price, stop_price=stop)
    except OpexError as exc:
        checked = exc.code
    assert _snapshot(engine) == before
    placed: int | None = None
    try:
        engine.place(ALICE, BTC, side, order_type, tif, quantity, price, stop_price=stop)
    except OpexError as exc:
        placed = exc.code
    assert checked == placed
    assert engine.audit() == []


def test_trade_when_looked_up_by_id_then_found_or_none() -> None:
    engine = _engine()
    engine.place(BOB, BTC, Side.SELL, OrderType.LIMIT, TimeInForce.GTC, D("0.01"), D(30_000))
    engine.place(ALICE, BTC, Side.BUY, OrderType.LIMIT, TimeInForce.GTC, D("0.01"), D(30_000))
    trade = engine.trade(BTC, 1)
    assert trade is not None
    assert (trade.buyer, trade.seller, trade.maker) == (ALICE, BOB, BOB)
    assert engine.trade(BTC, 2) is None
    assert engine.trade(BTC, 0) is None
