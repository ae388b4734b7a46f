"""One test per reason code of the pre-trade checks, named for its condition, and the
fail-closed cases: a missing or stale instrument, price or account refuses."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.risk_engine.config import LimitOverrides, RiskLimits
from services.risk_engine.domain import PLACE_CHECKS, Approved, Position, Rejected
from services.risk_engine.domain.checks import EXCHANGE_ORDER_TYPES
from shared.contracts import (
    OrderType,
    PlaceOrder,
    ReasonCode,
    RejectReason,
    Side,
    TickerUpdated,
    TimeInForce,
    TradingState,
)
from tests.unit.risk_engine.scenario import BTC, ETH, USER, World, at, instrument, ready_world

D = Decimal


def short_btc(world: World, quantity: str, *, usdt: str) -> None:
    """Give USER a short BTC position of ``quantity`` at 50,000 (as left by past fills)
    and ``usdt`` of USDT, no BTC."""
    account = world.engine.state.accounts[USER]
    account.positions[BTC] = Position(
        BTC, "BTC", "USDT", quantity=-D(quantity), avg_entry=D(50000), last_fill_price=D(50000)
    )
    account.totals = {"USDT": D(usdt)}


def test_check_order_is_the_documented_one() -> None:
    assert [check.__name__ for check in PLACE_CHECKS] == [
        "check_message",
        "check_instrument_known",
        "check_instrument_trading",
        "check_price_step",
        "check_quantity_step",
        "check_price_collar",
        "check_order_value",
        "check_order_type",
        "check_user_provisioned",
        "check_duplicate",
        "check_reduce_only",
        "check_balance",
        "check_max_notional",
        "check_position_size",
        "check_daily_loss",
        "check_leverage",
        "check_margin",
        "check_order_rate",
        "check_open_orders",
        "check_trading_state",
    ]


def test_place_when_every_check_passes_then_approved_with_a_reservation() -> None:
    world = ready_world()

    decision = world.place(Side.BUY, "0.1", "50000")

    assert isinstance(decision, Approved)
    assert (decision.asset, decision.amount) == ("USDT", D("5010"))  # 5000 x 1.002


# ----------------------------------------------------------------- one per reason code


def test_place_when_command_built_without_validation_then_invalid_message() -> None:
    world = ready_world()
    broken = PlaceOrder.model_construct(
        client_order_id="c-x",
        symbol=BTC,
        side=Side.BUY,
        type=OrderType.LIMIT,
        quantity=D("NaN"),
        price=D(50000),
        stop_price=None,
        time_in_force=TimeInForce.GTC,
        leverage=D(1),
        reduce_only=False,
    )

    decision = world.engine.decide_place(USER, broken)

    assert isinstance(decision, Rejected)
    assert decision.code is ReasonCode.INVALID_MESSAGE


def test_place_when_state_holds_amounts_beyond_exact_arithmetic_then_refused_not_guessed() -> None:
    world = ready_world()
    world.price(BTC, "50000.01")
    totals = world.engine.state.accounts[USER].totals
    assert totals is not None
    totals["BTC"] = D("1." + "1" * 98)  # 99 digits: x the mark needs more than 100

    rejected = world.rejected()

    assert rejected.code is ReasonCode.AMOUNT_TOO_PRECISE
    assert world.engine.state.accounts[USER].open_orders == {}


def test_place_when_limit_order_has_no_price_then_invalid_message() -> None:
    world = ready_world()
    broken = world.order().model_copy(update={"price": None})

    assert world.engine.decide_place(USER, broken).code is ReasonCode.INVALID_MESSAGE  # type: ignore[union-attr]


def test_place_when_limit_order_carries_a_stop_price_then_invalid_message() -> None:
    world = ready_world()
    broken = world.order().model_copy(update={"stop_price": D(50000)})

    rejected = world.engine.decide_place(USER, broken)

    assert isinstance(rejected, Rejected)
    assert rejected.code is ReasonCode.INVALID_MESSAGE
    assert "stop_price" in rejected.reason


def test_place_when_market_order_carries_a_price_hint_then_it_is_valid() -> None:
    world = ready_world()

    assert isinstance(world.place(type=OrderType.MARKET, price="50100"), Approved)


def test_place_when_symbol_not_listed_then_instrument_unknown() -> None:
    world = ready_world()

    rejected = world.rejected(symbol="SOL_USDT")

    assert rejected.code is RejectReason.INSTRUMENT_UNKNOWN


def test_place_when_pair_not_available_then_instrument_not_trading() -> None:
    world = ready_world()
    world.list_instrument(instrument(BTC, available=False))

    assert world.rejected().code is RejectReason.INSTRUMENT_NOT_TRADING


def test_place_when_price_off_the_step_then_price_step() -> None:
    world = ready_world()

    assert world.rejected(price="50000.005").code is RejectReason.PRICE_STEP


def test_place_when_stop_price_off_the_step_then_price_step() -> None:
    world = ready_world()

    rejected = world.rejected(type=OrderType.STOP_LIMIT, stop_price=D("50000.001"))

    assert rejected.code is RejectReason.PRICE_STEP


def test_place_when_quantity_off_the_step_then_quantity_step() -> None:
    world = ready_world()

    assert world.rejected(quantity="0.00015").code is RejectReason.QUANTITY_STEP


def test_place_when_limit_price_outside_the_collar_then_price_collar() -> None:
    world = ready_world()  # reference 50,000, collar 5 %

    assert world.rejected(price="52500.01").code is RejectReason.PRICE_COLLAR
    assert isinstance(world.place(price="52500"), Approved)


def test_place_when_market_order_and_no_price_ever_then_no_reference_price() -> None:
    world = World()
    world.list_instrument()
    world.provision()
    world.fund(USDT="100000")

    rejected = world.rejected(price=None)

    assert rejected.code is RejectReason.NO_REFERENCE_PRICE


def test_place_when_market_order_and_reference_stale_then_no_reference_price() -> None:
    world = ready_world()
    world.clock.advance(10_001)  # reference_price_max_age_ms = 10,000

    assert world.rejected(price=None).code is RejectReason.NO_REFERENCE_PRICE


def test_place_when_market_order_and_reference_just_fresh_then_approved() -> None:
    world = ready_world()
    world.clock.advance(10_000)

    assert isinstance(world.place(price=None), Approved)


def test_place_when_limit_order_and_reference_stale_then_no_reference_price() -> None:
    world = ready_world()
    world.clock.advance(60_000)

    assert world.rejected().code is RejectReason.NO_REFERENCE_PRICE


def test_place_when_value_below_the_pair_minimum_then_order_value_out_of_bounds() -> None:
    world = ready_world()  # min order value 10

    assert world.rejected(quantity="0.0001", price="50000").code is (
        RejectReason.ORDER_VALUE_OUT_OF_BOUNDS
    )  # 5 < 10


def test_place_when_value_above_the_pair_maximum_then_order_value_out_of_bounds() -> None:
    world = ready_world()
    world.list_instrument(instrument(BTC, max_value="1000"))

    assert world.rejected(quantity="0.1").code is RejectReason.ORDER_VALUE_OUT_OF_BOUNDS


def test_place_when_pair_allows_no_market_orders_then_order_type_not_allowed() -> None:
    world = ready_world()
    world.list_instrument(instrument(BTC, order_types=("LIMIT",)))

    assert world.rejected(price=None).code is RejectReason.ORDER_TYPE_NOT_ALLOWED
    assert isinstance(world.place(), Approved)


def test_place_when_pair_publishes_no_order_types_then_any_type_passes() -> None:
    world = ready_world()
    world.list_instrument(instrument(BTC, order_types=()))

    assert isinstance(world.place(price=None), Approved)


def test_exchange_order_types_cover_every_order_type() -> None:
    assert set(EXCHANGE_ORDER_TYPES) == set(OrderType)


def test_place_when_user_never_provisioned_then_user_not_provisioned() -> None:
    world = ready_world()

    assert world.rejected(user="99").code is RejectReason.USER_NOT_PROVISIONED


def test_place_when_user_has_balances_but_no_provisioning_then_user_not_provisioned() -> None:
    world = ready_world()
    world.fund("99", USDT="1000")

    assert world.rejected(user="99").code is RejectReason.USER_NOT_PROVISIONED


def test_place_when_client_order_id_already_used_then_duplicate_client_order_id() -> None:
    world = ready_world()
    world.approved(coid="same")

    assert world.rejected(coid="same").code is RejectReason.DUPLICATE_CLIENT_ORDER_ID


def test_place_when_client_order_id_was_rejected_before_then_duplicate() -> None:
    world = ready_world()
    world.rejected(coid="same", quantity="0.00015")

    assert world.rejected(coid="same").code is RejectReason.DUPLICATE_CLIENT_ORDER_ID


def test_place_when_another_user_used_the_client_order_id_then_approved() -> None:
    world = ready_world()
    world.provision("7")
    world.fund("7", USDT="100000")
    world.approved(coid="same", user="7")

    assert isinstance(world.place(coid="same"), Approved)


def test_place_when_reduce_only_and_no_position_then_invalid_field() -> None:
    world = ready_world()

    rejected = world.rejected(Side.SELL, reduce_only=True)

    assert rejected.code is ReasonCode.INVALID_FIELD
    assert "reduce-only" in rejected.reason


def test_place_when_buy_exceeds_free_quote_then_insufficient_balance() -> None:
    world = ready_world(USDT="5000")

    assert world.rejected(Side.BUY, "0.1", "50000").code is RejectReason.INSUFFICIENT_BALANCE


def test_place_when_sell_exceeds_free_base_then_insufficient_balance() -> None:
    world = ready_world(USDT="0", BTC="0.05")

    assert world.rejected(Side.SELL, "0.1").code is RejectReason.INSUFFICIENT_BALANCE


def test_place_when_reservations_hold_the_balance_then_insufficient_balance() -> None:
    world = ready_world(USDT="10020")
    world.approved(Side.BUY, "0.1", "50000")  # reserves 5010
    world.approved(Side.BUY, "0.1", "50000")  # reserves 5010: all of it

    assert world.rejected(Side.BUY, "0.0002", "50000").code is RejectReason.INSUFFICIENT_BALANCE


def test_place_when_market_buy_priced_at_the_collar_edge_exceeds_balance_then_refused() -> None:
    # 0.1 x 50,000 x 1.05 x 1.002 = 5260.5
    world = ready_world(USDT="5260.4")

    assert world.rejected(price=None).code is RejectReason.INSUFFICIENT_BALANCE

    world.fund(USDT="5260.5")
    assert isinstance(world.place(price=None), Approved)


def test_place_when_no_balance_snapshot_yet_then_insufficient_balance() -> None:
    world = World()
    world.list_instrument()
    world.price(BTC, "50000")
    world.provision()

    assert world.rejected().code is RejectReason.INSUFFICIENT_BALANCE


def test_place_when_value_above_max_order_notional_then_max_notional() -> None:
    world = ready_world(RiskLimits(max_order_notional=D(4000)))

    assert world.rejected(Side.BUY, "0.1", "50000").code is RejectReason.MAX_NOTIONAL


def test_place_when_position_would_exceed_max_position_size_then_max_position_size() -> None:
    world = ready_world(RiskLimits(max_position_size=D(9000)), USDT="100000")
    world.approved(Side.BUY, "0.1", "50000")  # worst case 5,000

    rejected = world.rejected(Side.BUY, "0.1", "50000")  # worst case 10,000

    assert rejected.code is RejectReason.MAX_POSITION_SIZE


def test_place_when_default_max_position_size_reached_then_refused() -> None:
    world = ready_world(USDT="2000000")
    world.list_instrument(instrument(BTC, max_value="10000000"))

    world.approved(Side.BUY, "10", "50000")

    rejected = world.rejected(Side.BUY, "10.01", "50000")

    assert rejected.code is RejectReason.MAX_POSITION_SIZE  # 1,000,500 > 1,000,000


def test_place_when_day_loss_reached_the_limit_then_daily_loss_limit() -> None:
    world = ready_world(USDT="100000")
    bought = world.approved(Side.BUY, "1", "50000")
    world.clock.advance(10)
    world.fill(bought, "1", "50000")
    world.clock.advance(10)
    world.price(BTC, "40000")  # unrealised -10,000 = MAX_DAILY_LOSS

    rejected = world.rejected(Side.BUY, "0.01", "40000")

    assert rejected.code is RejectReason.DAILY_LOSS_LIMIT


def test_place_when_order_asks_more_leverage_than_allowed_then_max_leverage() -> None:
    world = ready_world()

    assert world.rejected(leverage=D(101)).code is RejectReason.MAX_LEVERAGE


def test_place_when_instrument_caps_leverage_below_the_order_then_max_leverage() -> None:
    world = ready_world()
    world.list_instrument(instrument(BTC, max_leverage="5"))

    assert world.rejected(leverage=D(10)).code is RejectReason.MAX_LEVERAGE


def test_place_when_account_leverage_after_order_above_the_order_leverage_then_max_leverage() -> (
    None
):
    world = ready_world()
    short_btc(world, "3", usdt="10000")  # exposure 150,000 on equity 10,000: 15x

    rejected = world.rejected(Side.BUY, "0.1", "3000", symbol=ETH, leverage=D(10))

    assert rejected.code is RejectReason.MAX_LEVERAGE


def test_place_when_margin_ratio_after_order_below_minimum_then_margin_ratio() -> None:
    world = ready_world()
    short_btc(world, "3", usdt="10000")  # 15x: within leverage 20, margin 0.066 < 0.1

    rejected = world.rejected(Side.BUY, "0.1", "3000", symbol=ETH, leverage=D(20))

    assert rejected.code is RejectReason.MARGIN_RATIO


def test_place_when_orders_per_second_exhausted_then_order_rate() -> None:
    world = ready_world(RiskLimits(max_orders_per_second=2))
    world.approved(quantity="0.001")
    world.approved(quantity="0.001")

    assert world.rejected(quantity="0.001").code is RejectReason.ORDER_RATE

    world.clock.advance(1_001)
    world.price(BTC, "50000")
    assert isinstance(world.place(quantity="0.001"), Approved)


def test_place_when_orders_per_minute_exhausted_then_order_rate() -> None:
    world = ready_world(RiskLimits(max_orders_per_minute=3))
    for _ in range(3):
        world.approved(quantity="0.001")
        world.clock.advance(2_000)
        world.price(BTC, "50000")

    assert world.rejected(quantity="0.001").code is RejectReason.ORDER_RATE


def test_place_when_open_orders_at_the_maximum_then_max_open_orders() -> None:
    world = ready_world(RiskLimits(max_open_orders=2))
    world.approved(quantity="0.001")
    world.approved(quantity="0.001")

    assert world.rejected(quantity="0.001").code is RejectReason.MAX_OPEN_ORDERS


def test_place_when_trading_halted_globally_then_trading_halted() -> None:
    world = ready_world()
    world.engine.set_trading_state(TradingState.HALTED, changed_by="ops:alice", reason="incident")

    assert world.rejected().code is RejectReason.TRADING_HALTED


def test_place_when_user_halted_then_trading_halted() -> None:
    world = ready_world()
    world.engine.set_trading_state(
        TradingState.HALTED, changed_by="ops:alice", reason="review", user_id=USER
    )

    assert world.rejected().code is RejectReason.TRADING_HALTED


def test_place_when_reducing_and_order_grows_the_position_then_trading_reducing() -> None:
    world = ready_world()
    world.engine.set_trading_state(TradingState.REDUCING, changed_by="ops:alice", reason="wind")

    assert world.rejected().code is RejectReason.TRADING_REDUCING


# ------------------------------------------------------------------------ fail closed


@pytest.mark.parametrize("order_type", [OrderType.LIMIT, OrderType.MARKET])
def test_place_when_instrument_missing_then_refused(order_type: OrderType) -> None:
    world = World()
    world.price(BTC, "50000")
    world.provision()
    world.fund(USDT="100000")

    price = "50000" if order_type is OrderType.LIMIT else None
    assert world.rejected(price=price).code is RejectReason.INSTRUMENT_UNKNOWN


@pytest.mark.parametrize("order_type", [OrderType.LIMIT, OrderType.MARKET, OrderType.STOP])
def test_place_when_price_stale_then_refused_for_every_type(order_type: OrderType) -> None:
    world = ready_world()
    world.clock.advance(10_001)
    price = "50000" if order_type is OrderType.LIMIT else None
    stop_price = D(50500) if order_type is OrderType.STOP else None

    rejected = world.rejected(price=price, type=order_type, stop_price=stop_price)

    assert rejected.code is RejectReason.NO_REFERENCE_PRICE


def test_place_when_ticker_has_no_price_then_refused() -> None:
    world = World()
    world.list_instrument()
    world.provision()
    world.fund(USDT="100000")

    world.engine.on_ticker(TickerUpdated(symbol=BTC, at=at(world.clock.now)))

    assert world.rejected().code is RejectReason.NO_REFERENCE_PRICE


def test_place_when_account_unknown_then_refused() -> None:
    world = ready_world()

    assert world.rejected(user="nobody").code is RejectReason.USER_NOT_PROVISIONED


# ---------------------------------------------------------------- reducing orders


def test_place_when_order_reduces_the_position_then_risk_limits_do_not_block_it() -> None:
    world = ready_world(USDT="100000", BTC="2")
    bought = world.approved(Side.BUY, "1", "50000")
    world.clock.advance(10)
    world.fill(bought, "1", "50000")
    world.limits.set_user(
        USER, LimitOverrides(max_position_size=D(1), max_daily_loss=D(0), min_margin_ratio=D(1))
    )

    assert world.rejected(Side.BUY, "0.01", "50000").code is RejectReason.MAX_POSITION_SIZE
    assert isinstance(world.place(Side.SELL, "0.5", "50000"), Approved)


def test_place_when_sells_pending_would_flip_the_position_then_not_reducing() -> None:
    world = ready_world(USDT="100000", BTC="2")
    bought = world.approved(Side.BUY, "1", "50000")
    world.clock.advance(10)
    world.fill(bought, "1", "50000")
    world.approved(Side.SELL, "0.6", "50000")

    rejected = world.rejected(Side.SELL, "0.5", "50000", reduce_only=True)

    assert rejected.code is ReasonCode.INVALID_FIELD
    assert isinstance(world.place(Side.SELL, "0.4", "50000", reduce_only=True), Approved)
