"""GatewayOrder: placement, listings, fills, cancels, and the events they publish."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from services.order_gateway.domain import (
    CancelDeferred,
    CancelDone,
    CancelRefused,
    ExchangeStatus,
    GatewayOrder,
    SendCancel,
    average_price,
    refuse_unknown_cancel,
)
from shared.contracts import (
    CancelOrder,
    CancelRejected,
    Liquidity,
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderFailed,
    OrderFilled,
    OrderRejected,
    OrderStatus,
    OrderSubmitted,
    OrderType,
    RejectReason,
    RejectSource,
    TimeInForce,
)
from tests.unit.order_gateway.factories import (
    T0,
    USER,
    accepted_order,
    listed,
    new_order,
    sent_order,
    trade,
)

D = Decimal
S = OrderStatus


def _status(order: GatewayOrder) -> OrderStatus:
    return order.status  # read afresh (mypy narrows attribute reads)


def test_from_approved_when_stop_then_held_pending_submit() -> None:
    order = new_order(order_type=OrderType.STOP, price=None, stop_price="110")
    assert order.held
    assert order.status is S.PENDING_SUBMIT
    assert not order.is_in_flight
    assert order.begin_submit(D(111), TimeInForce.IOC, T0).anomalies


def test_begin_submit_when_recorded_then_in_flight_without_event() -> None:
    order = new_order()
    out = order.begin_submit(D(100), TimeInForce.GTC, T0)
    assert out.events == ()
    assert order.is_in_flight
    assert order.submitted_at_ms == T0
    assert order.begin_submit(D(100), TimeInForce.GTC, T0).anomalies  # never twice


def test_on_submit_sent_when_answered_then_submitted_event() -> None:
    order = new_order()
    order.begin_submit(D(100), TimeInForce.GTC, T0)
    out = order.on_submit_sent()
    assert [type(e) for e in out.events] == [OrderSubmitted]
    assert order.status is S.SUBMITTED
    assert order.is_in_flight
    assert order.on_submit_sent().events == ()


def test_on_submit_sent_when_listed_before_its_answer_then_nothing_refused() -> None:
    """A listing may correlate the order before its placement answer is applied: the
    answer then changes nothing and is no illegal transition."""
    order = new_order()
    order.begin_submit(D(100), TimeInForce.GTC, T0)
    order.on_listed(listed("9001", time_ms=T0 + 5))
    assert order.status is S.ACCEPTED
    out = order.on_submit_sent()
    assert (out.events, out.refused, out.anomalies) == ((), (), ())
    assert order.status is S.ACCEPTED


def test_on_submit_not_sent_when_opex_did_nothing_then_may_be_sent_again() -> None:
    order = new_order()
    order.begin_submit(D(100), TimeInForce.GTC, T0)
    assert order.on_submit_not_sent().events == ()
    assert not order.is_in_flight
    assert order.begin_submit(D(100), TimeInForce.GTC, T0 + 5).anomalies == ()


def test_on_submit_refused_when_opex_code_then_rejected_by_exchange() -> None:
    order = new_order()
    order.begin_submit(D(100), TimeInForce.GTC, T0)
    (event,) = order.on_submit_refused(4001, "insufficient balance").events
    assert isinstance(event, OrderRejected)
    assert event.source is RejectSource.EXCHANGE
    assert event.reason_code is RejectReason.INSUFFICIENT_BALANCE
    assert "4001" in event.reason
    other = new_order("c2")
    (event,) = other.on_submit_refused(1020).events
    assert isinstance(event, OrderRejected)
    assert event.reason_code is RejectReason.EXCHANGE_REJECTED


def test_on_listed_when_in_flight_then_accepted_with_opex_id() -> None:
    order = sent_order()
    (event,) = order.on_listed(listed("9001")).events
    assert isinstance(event, OrderAccepted)
    assert event.order_id == "9001"
    assert order.status is S.ACCEPTED
    assert not order.is_in_flight
    assert order.on_listed(listed("9001")).events == ()


def test_on_listed_when_crash_left_pending_submit_then_accepted() -> None:
    order = new_order()
    order.begin_submit(D(100), TimeInForce.GTC, T0)
    (event,) = order.on_listed(listed()).events
    assert isinstance(event, OrderAccepted)


def test_on_listed_when_terms_differ_then_anomaly_and_unchanged() -> None:
    order = sent_order()
    out = order.on_listed(listed(price="101"))
    assert out.anomalies
    assert order.opex_order_id is None


def test_on_listed_when_failed_then_refused_and_logged() -> None:
    order = sent_order()
    order.fail(RejectReason.NOT_ACKNOWLEDGED, "never listed")
    out = order.on_listed(listed())
    assert out.events == ()
    assert out.refused[0].from_status is S.FAILED
    assert order.status is S.FAILED


def test_on_listed_when_executed_beyond_trades_then_needs_trades_and_terminal_held() -> None:
    order = accepted_order()
    out = order.on_listed(listed(status=ExchangeStatus.CANCELED, executed="0.4"))
    assert out.needs_trades
    assert out.events == ()
    assert order.status is S.ACCEPTED
    order.on_trade(trade("t1", "0.4"))
    (event,) = order.on_listed(listed(status=ExchangeStatus.CANCELED, executed="0.4")).events
    assert isinstance(event, OrderCanceled)
    assert event.filled_quantity == D("0.4")


def test_on_listed_when_expired_or_rejected_then_terminal_events() -> None:
    expired = accepted_order()
    (event,) = expired.on_listed(listed(status=ExchangeStatus.EXPIRED)).events
    assert isinstance(event, OrderExpired)
    rejected = accepted_order()
    (event,) = rejected.on_listed(listed(status=ExchangeStatus.REJECTED)).events
    assert isinstance(event, OrderRejected)
    assert event.source is RejectSource.EXCHANGE


def test_on_trade_when_partial_then_cumulative_fill_event() -> None:
    order = accepted_order()
    (event,) = order.on_trade(trade("t1", "0.25", "100", maker=True)).events
    assert isinstance(event, OrderFilled)
    assert event.status is S.PARTIALLY_FILLED
    assert event.filled_quantity == D("0.25")
    assert event.avg_price == D(100)
    assert event.last_fill.liquidity is Liquidity.MAKER
    assert event.last_fill.trade_id == "t1"
    (event,) = order.on_trade(trade("t2", "0.75", "104")).events
    assert isinstance(event, OrderFilled)
    assert event.status is S.FILLED
    assert event.avg_price == D(103)
    assert order.fees == {"BTC": D("0.002")}


def test_on_trade_when_duplicate_then_nothing() -> None:
    order = accepted_order()
    order.on_trade(trade("t1", "0.5"))
    assert order.on_trade(trade("t1", "0.5")).events == ()
    assert order.filled_quantity == D("0.5")


def test_on_trade_when_it_would_overfill_then_anomaly_not_applied() -> None:
    order = accepted_order()
    out = order.on_trade(trade("t1", "2"))
    assert out.anomalies
    assert order.filled_quantity == 0


def test_on_trade_when_other_order_then_anomaly() -> None:
    order = accepted_order()
    assert order.on_trade(trade("t1", "0.5", order_id="1")).anomalies


def test_on_trade_when_fee_asset_blank_then_the_received_asset() -> None:
    order = accepted_order()
    order.on_trade(trade("t1", "0.5", fee_asset=""))
    assert order.fees == {"BTC": D("0.001")}


def test_on_trade_when_after_cancel_then_late_fill_applied_as_canceled() -> None:
    order = accepted_order()
    assert isinstance(order.request_cancel(), SendCancel)
    order.on_listed(listed(status=ExchangeStatus.CANCELED))
    assert order.status is S.CANCELED
    (event,) = order.on_trade(trade("t1", "0.5")).events
    assert isinstance(event, OrderCanceled)
    assert event.filled_quantity == D("0.5")
    assert event.last_fill is not None
    (event,) = order.on_trade(trade("t2", "0.5")).events
    assert isinstance(event, OrderFilled)
    assert event.status is S.FILLED
    assert _status(order) is S.FILLED


def test_on_trade_when_cancel_pending_then_stays_pending_cancel() -> None:
    order = accepted_order()
    order.request_cancel()
    (event,) = order.on_trade(trade("t1", "0.5")).events
    assert isinstance(event, OrderFilled)
    assert event.status is S.PARTIALLY_FILLED
    assert order.status is S.PENDING_CANCEL


def test_request_cancel_when_accepted_then_send_and_pending_cancel() -> None:
    order = accepted_order()
    decision = order.request_cancel()
    assert decision == SendCancel("9001")
    assert order.status is S.PENDING_CANCEL
    assert isinstance(order.request_cancel(), CancelDeferred)
    (event,) = order.on_listed(listed(status=ExchangeStatus.CANCELED)).events
    assert isinstance(event, OrderCanceled)


def test_request_cancel_when_in_flight_then_deferred_until_listed() -> None:
    order = sent_order()
    assert isinstance(order.request_cancel(), CancelDeferred)
    assert order.on_listed(listed()).send_cancel


def test_request_cancel_when_held_stop_then_canceled_locally() -> None:
    order = new_order(order_type=OrderType.STOP_LIMIT, stop_price="110", price="111")
    decision = order.request_cancel()
    assert isinstance(decision, CancelDone)
    (event,) = decision.outcome.events
    assert isinstance(event, OrderCanceled)


def test_request_cancel_when_finished_then_refused_not_open() -> None:
    order = accepted_order()
    order.on_trade(trade("t1", "1"))
    decision = order.request_cancel()
    assert isinstance(decision, CancelRefused)
    assert decision.rejection.reason_code is RejectReason.ORDER_NOT_OPEN


def test_on_cancel_refused_when_7006_then_open_again_and_cancel_rejected() -> None:
    order = accepted_order()
    order.request_cancel()
    (event,) = order.on_cancel_refused(7006).events
    assert isinstance(event, CancelRejected)
    assert event.reason_code is RejectReason.ORDER_NOT_OPEN
    assert order.status is S.ACCEPTED


def test_refuse_unknown_cancel_when_called_then_not_found() -> None:
    rejection = refuse_unknown_cancel(CancelOrder(symbol="BTC_USDT", client_order_id="nope"))
    assert rejection.reason_code is RejectReason.ORDER_NOT_FOUND


def test_fail_when_in_flight_then_order_failed() -> None:
    order = sent_order()
    (event,) = order.fail(RejectReason.NOT_ACKNOWLEDGED, "never listed").events
    assert isinstance(event, OrderFailed)
    assert event.reason_code is RejectReason.NOT_ACKNOWLEDGED


def test_external_when_observed_then_nothing_published() -> None:
    order = GatewayOrder.from_external(USER, listed("77"))
    assert order.external
    assert order.on_trade(trade("t1", "0.5", order_id="77")).events == ()
    assert order.filled_quantity == D("0.5")


# ---------------------------------------------------------------------- properties

_quantities = st.integers(min_value=1, max_value=50).map(lambda n: D(n) / 100)
_prices = st.integers(min_value=1, max_value=10**6).map(lambda n: D(n) / 1000)


@st.composite
def _trades_and_order(draw: st.DrawFn) -> tuple[list[tuple[Decimal, Decimal]], list[int]]:
    fills = draw(st.lists(st.tuples(_quantities, _prices), min_size=1, max_size=8))
    order = draw(st.permutations(range(len(fills))))
    dupes = draw(st.lists(st.integers(0, len(fills) - 1), max_size=5))
    return fills, list(order) + dupes


@settings(max_examples=150, deadline=None)
@given(data=_trades_and_order(), extra=st.integers(min_value=0, max_value=3))
def test_on_trade_when_any_order_with_duplicates_then_same_cumulative_state(
    data: tuple[list[tuple[Decimal, Decimal]], list[int]], extra: int
) -> None:
    fills, sequence = data
    total = sum((q for q, _ in fills), D(0))
    quantity = str(total + D(extra) / 100)
    reference = accepted_order(quantity=quantity)
    for index, (q, p) in enumerate(fills):
        reference.on_trade(trade(f"t{index}", str(q), str(p)))
    order = accepted_order(quantity=quantity)
    for index in sequence:
        q, p = fills[index]
        order.on_trade(trade(f"t{index}", str(q), str(p)))
        assert order.filled_quantity <= order.quantity
    state = (order.filled_quantity, order.filled_notional, order.fees, order.status)
    assert state == (
        reference.filled_quantity,
        reference.filled_notional,
        reference.fees,
        reference.status,
    )
    assert order.filled_quantity == total
    assert order.filled_notional == sum((q * p for q, p in fills), D(0))
    assert order.status is (S.FILLED if extra == 0 else S.PARTIALLY_FILLED)
    assert order.avg_price == average_price(order.filled_notional, total)


@settings(max_examples=100, deadline=None)
@given(st.lists(_quantities, min_size=1, max_size=10))
def test_on_trade_when_trades_exceed_quantity_then_never_overfilled(sizes: list[Decimal]) -> None:
    order = accepted_order(quantity="0.5")
    for index, size in enumerate(sizes):
        order.on_trade(trade(f"t{index}", str(size)))
        assert order.filled_quantity <= order.quantity
