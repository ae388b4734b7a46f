"""Reconciliation: local open orders against OPEX's."""

from __future__ import annotations

from services.order_gateway.config import GatewayConfig
from services.order_gateway.domain import ExchangeStatus, reconcile
from shared.contracts import OrderAccepted, OrderCanceled, OrderFilled
from tests.unit.order_gateway.factories import USER, accepted_order, listed, sent_order, trade

CONFIG = GatewayConfig()


def test_reconcile_when_pending_cancel_and_opex_canceled_then_order_canceled() -> None:
    order = accepted_order()
    order.request_cancel()
    result = reconcile(USER, [order], [], [listed(status=ExchangeStatus.CANCELED)], config=CONFIG)
    assert [type(e) for e in result.outcome.events] == [OrderCanceled]


def test_reconcile_when_local_open_and_opex_filled_then_needs_trades_then_filled() -> None:
    order = accepted_order()
    done = listed(status=ExchangeStatus.FILLED, executed="1")
    result = reconcile(USER, [order], [], [done], config=CONFIG)
    assert result.needs_trades == (order,)
    assert [type(e) for e in order.on_trade(trade("t1", "1")).events] == [OrderFilled]


def test_reconcile_when_opex_lists_nowhere_then_unresolved() -> None:
    order = accepted_order()
    result = reconcile(USER, [order], [], [], config=CONFIG)
    assert result.unresolved == (order,)
    assert result.outcome.events == ()


def test_reconcile_when_opex_open_unknown_then_external_without_event() -> None:
    result = reconcile(USER, [], [listed("555")], config=CONFIG)
    (external,) = result.external
    assert external.external
    assert external.opex_order_id == "555"
    assert result.outcome.events == ()


def test_reconcile_when_in_flight_matches_then_accepted_not_external() -> None:
    order = sent_order()
    result = reconcile(USER, [order], [listed("9001")], config=CONFIG)
    assert [type(e) for e in result.outcome.events] == [OrderAccepted]
    assert result.external == ()
    assert order.opex_order_id == "9001"


def test_reconcile_when_both_open_and_agree_then_nothing() -> None:
    order = accepted_order()
    result = reconcile(USER, [order], [listed()], config=CONFIG)
    assert result.outcome.events == ()
    assert result.external == ()
    assert result.unresolved == ()
