"""Rules of the data models (shared/contracts/_commands.py, _events.py, _enums.py)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from shared.contracts import (
    BalancesUpdated,
    CancelOrder,
    CancelRejected,
    ClosePosition,
    InstrumentUpdated,
    InvalidMessage,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    OrderStatus,
    OrderSubmitted,
    OrderType,
    PlaceOrder,
    PositionUpdated,
    ReasonCode,
    Side,
    TimeInForce,
    UserProvisioningFailed,
    UserRegistered,
    registry,
)
from shared.contracts.testing import example, examples


def refused(model: type[BaseModel], **fields: Any) -> InvalidMessage:
    with pytest.raises(ValidationError) as caught:
        model(**fields)
    return InvalidMessage.from_validation_error(caught.value, subject=model.__name__)


# ----------------------------------------------------------------------------- commands

LIMIT: dict[str, Any] = {
    "client_order_id": "c-1",
    "symbol": "btcusdt",
    "side": "BUY",
    "type": "LIMIT",
    "quantity": 0.001,
    "price": "65000.50",
}


def test_place_order_when_ui_input_then_normalised() -> None:
    order = PlaceOrder(**LIMIT)

    assert order.symbol == "BTC_USDT"
    assert order.side is Side.BUY
    assert order.type is OrderType.LIMIT
    assert order.quantity == Decimal("0.001")
    assert order.price == Decimal("65000.5")
    assert order.time_in_force is TimeInForce.GTC
    assert order.leverage == 1
    assert order.reduce_only is False


@pytest.mark.parametrize(("given_tif", "expected"), [(None, "IOC"), ("ioc", "IOC"), ("FOK", "FOK")])
def test_place_order_when_market_then_ioc_by_default_and_fok_allowed(
    given_tif: str | None, expected: str
) -> None:
    order = PlaceOrder(**{**LIMIT, "type": "market", "price": None, "time_in_force": given_tif})

    assert order.time_in_force == expected


def test_place_order_when_market_says_gtc_then_refused_on_time_in_force() -> None:
    error = refused(PlaceOrder, **{**LIMIT, "type": "market", "time_in_force": "GTC"})

    assert error.code is ReasonCode.INVALID_FIELD
    assert error.errors[0].loc == ("time_in_force",)


@pytest.mark.parametrize(
    ("order_type", "missing", "loc"),
    [
        ("limit", {"price": None}, "price"),
        ("stop_limit", {"price": None, "stop_price": "1"}, "price"),
        ("stop_limit", {"stop_price": None}, "stop_price"),
        ("stop", {"stop_price": None}, "stop_price"),
    ],
)
def test_place_order_when_price_its_type_needs_is_missing_then_missing_field(
    order_type: str, missing: dict[str, Any], loc: str
) -> None:
    error = refused(PlaceOrder, **{**LIMIT, "type": order_type, "stop_price": "1", **missing})

    assert error.code is ReasonCode.MISSING_FIELD
    assert error.errors[0].loc == (loc,)


@pytest.mark.parametrize("order_type", ["market", "limit"])
def test_place_order_when_stop_price_on_non_stop_type_then_field_not_allowed(
    order_type: str,
) -> None:
    error = refused(PlaceOrder, **{**LIMIT, "type": order_type, "stop_price": "70000"})

    assert error.code is ReasonCode.FIELD_NOT_ALLOWED
    assert error.errors[0].loc == ("stop_price",)


def test_place_order_when_stop_orders_complete_then_accepted() -> None:
    stop = PlaceOrder(**{**LIMIT, "type": "stop", "price": None, "stop_price": "70000"})
    stop_limit = PlaceOrder(**{**LIMIT, "type": "stop_limit", "stop_price": "70000"})

    assert stop.stop_price == Decimal(70000)
    assert stop_limit.price == Decimal("65000.5")


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("quantity", 0, ReasonCode.NON_POSITIVE_AMOUNT),
        ("quantity", "-1", ReasonCode.NON_POSITIVE_AMOUNT),
        ("quantity", "NaN", ReasonCode.NON_FINITE_AMOUNT),
        ("price", "1e20", ReasonCode.AMOUNT_TOO_LARGE),
        ("leverage", 0, ReasonCode.NON_POSITIVE_AMOUNT),
        ("leverage", 1001, ReasonCode.AMOUNT_OUT_OF_RANGE),
        ("symbol", "BTC", ReasonCode.INVALID_SYMBOL),
        ("side", "long", ReasonCode.INVALID_FIELD),
        ("type", "iceberg", ReasonCode.INVALID_FIELD),
        ("reduce_only", "yes", ReasonCode.INVALID_FIELD),
        ("reduce_only", 1, ReasonCode.INVALID_FIELD),
        ("client_order_id", "x" * 65, ReasonCode.INVALID_IDENTIFIER),
        ("client_order_id", 12, ReasonCode.INVALID_FIELD),
    ],
)
def test_place_order_when_field_wrong_then_refused_with_its_code(
    field: str, value: object, code: ReasonCode
) -> None:
    error = refused(PlaceOrder, **{**LIMIT, field: value})

    assert error.code is code
    assert error.errors[0].loc == (field,)


@pytest.mark.parametrize("field", ["client_order_id", "symbol", "side", "type", "quantity"])
def test_place_order_when_required_field_missing_then_missing_field(field: str) -> None:
    fields = {key: value for key, value in LIMIT.items() if key != field}

    error = refused(PlaceOrder, **fields)

    assert error.code is ReasonCode.MISSING_FIELD
    assert error.errors[0].loc[0] == field


def test_place_order_when_unknown_fields_then_ignored() -> None:
    order = PlaceOrder(**LIMIT, colour="blue", post_only=True)

    assert not hasattr(order, "colour")
    assert order == PlaceOrder(**LIMIT)


def test_messages_are_frozen_and_hashable() -> None:
    order = PlaceOrder(**LIMIT)

    with pytest.raises(ValidationError):
        order.quantity = Decimal(1)  # type: ignore[misc]
    assert hash(order) == hash(PlaceOrder(**LIMIT))
    for model in registry:
        for data in examples(model):
            assert hash(data) == hash(data.model_copy())


def test_cancel_order_when_neither_id_then_missing_field() -> None:
    error = refused(CancelOrder, symbol="BTC_USDT")

    assert error.code is ReasonCode.MISSING_FIELD
    assert error.errors[0].loc == ("client_order_id",)


def test_cancel_order_when_either_id_then_accepted() -> None:
    assert CancelOrder(symbol="BTCUSDT", order_id="1001").order_id == "1001"
    assert CancelOrder(symbol="BTCUSDT", client_order_id="c-1").client_order_id == "c-1"


def test_close_position_when_quantity_omitted_then_all_of_it() -> None:
    close = ClosePosition(symbol="ETHUSDT")

    assert close.quantity is None
    assert refused(ClosePosition, symbol="ETHUSDT", quantity=0).code is (
        ReasonCode.NON_POSITIVE_AMOUNT
    )


@pytest.mark.parametrize(
    ("enum", "text", "member"),
    [
        (Side, "SELL", Side.SELL),
        (OrderType, "Stop_Limit", OrderType.STOP_LIMIT),
        (TimeInForce, "fok", TimeInForce.FOK),
        (OrderStatus, "partially_filled", OrderStatus.PARTIALLY_FILLED),
    ],
)
def test_enums_when_other_case_then_same_member(enum: type[Any], text: str, member: Any) -> None:
    assert enum(text) is member


def test_enum_helpers() -> None:
    assert Side.BUY.opposite is Side.SELL
    assert OrderType.STOP_LIMIT.needs_price
    assert OrderType.STOP_LIMIT.needs_stop_price
    assert not OrderType.MARKET.needs_price
    assert OrderStatus.FILLED.is_terminal
    assert not OrderStatus.PARTIALLY_FILLED.is_terminal


# ------------------------------------------------------------------------------- events

ORDER: dict[str, Any] = {
    "client_order_id": "c-1",
    "symbol": "BTC_USDT",
    "side": "buy",
    "order_type": "limit",
    "quantity": "1",
}
FILL: dict[str, Any] = {
    "trade_id": "t-1",
    "price": "100",
    "quantity": "0.4",
    "fee": "0.1",
    "fee_asset": "usdt",
    "liquidity": "TAKER",
}


def test_order_events_when_status_omitted_then_their_own() -> None:
    assert OrderSubmitted(**ORDER).status is OrderStatus.SUBMITTED
    assert OrderAccepted(**ORDER, order_id="1").status is OrderStatus.ACCEPTED
    assert OrderCanceled(**ORDER).status is OrderStatus.CANCELED


def test_order_event_when_status_of_another_event_then_refused() -> None:
    error = refused(OrderCanceled, **ORDER, status="FILLED")

    assert error.code is ReasonCode.INVALID_FIELD
    assert error.errors[0].loc == ("status",)


def test_order_accepted_when_no_order_id_then_missing_field() -> None:
    assert refused(OrderAccepted, **ORDER).code is ReasonCode.MISSING_FIELD


def test_order_rejected_when_reason_missing_then_refused() -> None:
    error = refused(OrderRejected, **ORDER, source="risk", reason_code="MAX_NOTIONAL")

    assert error.code is ReasonCode.MISSING_FIELD
    assert error.errors[0].loc == ("reason",)


def test_order_rejected_when_reason_code_unknown_then_refused() -> None:
    error = refused(OrderRejected, **ORDER, source="risk", reason_code="FEELS_WRONG", reason="no")

    assert error.errors[0].loc == ("reason_code",)


def test_order_filled_when_partial_then_partially_filled_with_remaining() -> None:
    filled = OrderFilled(
        **ORDER,
        status="PARTIALLY_FILLED",
        filled_quantity="0.4",
        avg_price="100",
        last_fill=FILL,
    )

    assert filled.remaining_quantity == Decimal("0.6")
    assert filled.last_fill.fee_asset == "USDT"


@pytest.mark.parametrize(
    ("status", "filled", "loc"),
    [
        ("FILLED", "0.4", "status"),
        ("PARTIALLY_FILLED", "1", "status"),
        ("FILLED", "0", "filled_quantity"),
        ("FILLED", "1.5", "filled_quantity"),
    ],
)
def test_order_filled_when_status_disagrees_with_quantities_then_refused(
    status: str, filled: str, loc: str
) -> None:
    error = refused(
        OrderFilled,
        **ORDER,
        status=status,
        filled_quantity=filled,
        avg_price="100",
        last_fill=FILL,
    )

    assert error.errors[0].loc == (loc,)


def test_order_event_when_filled_without_avg_price_then_missing_field() -> None:
    error = refused(OrderCanceled, **ORDER, filled_quantity="0.5")

    assert error.code is ReasonCode.MISSING_FIELD
    assert error.errors[0].loc == ("avg_price",)


def test_cancel_rejected_when_no_order_named_then_missing_field() -> None:
    error = refused(
        CancelRejected,
        symbol="BTC_USDT",
        source="exchange",
        reason_code="ORDER_NOT_OPEN",
        reason="filled",
    )

    assert error.code is ReasonCode.MISSING_FIELD


def test_position_side_follows_sign_of_quantity() -> None:
    flat, short = examples(PositionUpdated)

    assert flat.side is None
    assert short.side is Side.SELL
    assert PositionUpdated(position_id="p", symbol="BTCUSDT", quantity="0.1").side is Side.BUY


def test_balances_when_asset_repeated_then_refused() -> None:
    error = refused(
        BalancesUpdated,
        balances=[{"asset": "USDT", "free": "1"}, {"asset": "usdt", "free": "2"}],
        source="opex",
    )

    assert error.errors[0].loc == ("balances",)


def test_balances_when_list_given_then_tuple_kept() -> None:
    update = BalancesUpdated(balances=[{"asset": "BTC", "free": 0.5}], source="OPEX")

    assert isinstance(update.balances, tuple)
    assert update.balances[0].free == Decimal("0.5")
    assert update.balances[0].locked == 0


def test_balances_when_negative_then_negative_amount() -> None:
    error = refused(BalancesUpdated, balances=[{"asset": "BTC", "free": "-1"}], source="opex")

    assert error.code is ReasonCode.NEGATIVE_AMOUNT
    assert error.errors[0].loc == ("balances", 0, "free")


def test_instrument_when_symbol_disagrees_with_assets_then_invalid_symbol() -> None:
    fields = example(InstrumentUpdated).model_dump()

    error = refused(InstrumentUpdated, **{**fields, "quote_asset": "USDC"})

    assert error.code is ReasonCode.INVALID_SYMBOL
    assert error.errors[0].loc == ("symbol",)


def test_instrument_when_min_above_max_then_refused() -> None:
    fields = example(InstrumentUpdated).model_dump()

    error = refused(InstrumentUpdated, **{**fields, "min_order_value": "2000000"})

    assert error.errors[0].loc == ("min_order_value",)


def test_instrument_order_types_upper_cased() -> None:
    fields = example(InstrumentUpdated).model_dump()

    instrument = InstrumentUpdated(**{**fields, "order_types": ["limit", "stop_loss_limit"]})

    assert instrument.order_types == ("LIMIT", "STOP_LOSS_LIMIT")


@pytest.mark.parametrize("email", ["ada", "ada@", "@example.com", "ada@example", "a@b@c.com"])
def test_user_registered_when_email_malformed_then_invalid_email(email: str) -> None:
    assert refused(UserRegistered, email=email).code is ReasonCode.INVALID_EMAIL


def test_user_provisioning_failed_when_attempts_not_positive_int_then_refused() -> None:
    fields = example(UserProvisioningFailed).model_dump()

    for attempts in (0, "3", 2.5, True):
        assert refused(UserProvisioningFailed, **{**fields, "attempts": attempts}).errors[
            0
        ].loc == ("attempts",)
