"""The asynchronous order pipeline of `Sandbox`, on a manual clock (no HTTP, no loop)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.opex_sandbox.config import SandboxConfig
from services.opex_sandbox.domain import (
    ManualClock,
    Order,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
)
from services.opex_sandbox.domain.errors import (
    CancelOrderNotAllowed,
    InvalidRequestParam,
    OrderNotFound,
    SubmitOrderForbiddenByAccountant,
)
from services.opex_sandbox.sandbox import ADMIN_UUID, Sandbox, validate_new_order

D = Decimal
BTC = "BTC_USDT"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def sandbox(clock: ManualClock) -> Sandbox:
    config = SandboxConfig(market_maker=False, listing_delay_ms=100, cancel_delay_ms=50)
    return Sandbox(config, clock=clock)


def status(order: Order) -> OrderStatus:
    """The order's status now (a call, so that type checkers do not narrow it)."""
    return order.status


def funded(sb: Sandbox, name: str) -> str:
    user = sb.users.create_enabled(f"{name}@example.com", "pw")
    sb.wallets.deposit(user.uuid, "USDT", D(100_000))
    sb.wallets.deposit(user.uuid, "BTC", D(2))
    return user.uuid


def limit(sb: Sandbox, user: str, side: Side, qty: str, price: str) -> None:
    sb.submit(user, BTC, side, OrderType.LIMIT, TimeInForce.GTC, D(qty), D(price), None, None)


def test_submit_when_valid_then_listed_only_after_the_delay(
    sandbox: Sandbox, clock: ManualClock
) -> None:
    alice = funded(sandbox, "alice")
    limit(sandbox, alice, Side.BUY, "0.01", "30000")
    assert sandbox.engine.open_orders(alice, BTC) == []
    clock.advance(99)
    sandbox.apply_due()
    assert sandbox.engine.open_orders(alice, BTC) == []
    clock.advance(1)
    sandbox.apply_due()
    [order] = sandbox.engine.open_orders(alice, BTC)
    assert order.status is OrderStatus.NEW


def test_submit_when_refused_synchronously_then_raises_and_queues_nothing(
    sandbox: Sandbox,
) -> None:
    alice = funded(sandbox, "alice")
    with pytest.raises(SubmitOrderForbiddenByAccountant):
        limit(sandbox, alice, Side.BUY, "10", "30000")
    assert not sandbox.placements


def test_apply_when_funds_spent_meanwhile_then_order_dropped_and_counted(
    sandbox: Sandbox, clock: ManualClock
) -> None:
    alice = funded(sandbox, "alice")
    limit(sandbox, alice, Side.BUY, "3", "30000")  # 90,000 of 100,000 USDT
    limit(sandbox, alice, Side.BUY, "3", "30000")  # checked against 100,000 free: passes
    clock.advance(100)
    sandbox.apply_due()
    assert len(sandbox.engine.open_orders(alice, BTC)) == 1
    assert (sandbox.applied, sandbox.dropped) == (1, 1)
    assert sandbox.engine.audit() == []


def test_apply_when_market_gtc_then_rejected_by_engine_and_never_listed(
    sandbox: Sandbox, clock: ManualClock
) -> None:
    alice = funded(sandbox, "alice")
    sandbox.submit(
        alice, BTC, Side.BUY, OrderType.MARKET, TimeInForce.GTC, D("0.01"), D(30000), None, None
    )
    clock.advance(100)
    sandbox.apply_due()
    assert sandbox.engine.all_orders(alice, BTC) == []
    assert sandbox.rejected == 1


def test_cancel_when_working_then_answered_now_and_applied_later(
    sandbox: Sandbox, clock: ManualClock
) -> None:
    alice = funded(sandbox, "alice")
    limit(sandbox, alice, Side.BUY, "0.01", "30000")
    clock.advance(100)
    sandbox.apply_due()
    [order] = sandbox.engine.open_orders(alice, BTC)
    answered = sandbox.cancel(alice, BTC, order.order_id)
    assert answered is order
    assert status(order) is OrderStatus.NEW  # not yet
    clock.advance(50)
    sandbox.apply_due()
    assert status(order) is OrderStatus.CANCELED
    assert sandbox.cancel(alice, BTC, order.order_id) is order  # echoed


def test_cancel_when_filled_or_unknown_then_7006_or_7001(
    sandbox: Sandbox, clock: ManualClock
) -> None:
    alice, bob = funded(sandbox, "alice"), funded(sandbox, "bob")
    limit(sandbox, alice, Side.SELL, "0.01", "30000")
    limit(sandbox, bob, Side.BUY, "0.01", "30000")
    clock.advance(100)
    sandbox.apply_due()
    [order] = sandbox.engine.all_orders(alice, BTC)
    assert order.status is OrderStatus.FILLED
    with pytest.raises(CancelOrderNotAllowed):
        sandbox.cancel(alice, BTC, order.order_id)
    with pytest.raises(OrderNotFound):
        sandbox.cancel(bob, BTC, order.order_id)  # someone else's


def test_cancel_when_filled_before_the_cancel_applies_then_cancel_void(
    sandbox: Sandbox, clock: ManualClock
) -> None:
    alice, bob = funded(sandbox, "alice"), funded(sandbox, "bob")
    limit(sandbox, alice, Side.SELL, "0.01", "30000")
    clock.advance(100)
    sandbox.apply_due()
    [order] = sandbox.engine.open_orders(alice, BTC)
    limit(sandbox, bob, Side.BUY, "0.01", "30000")  # reaches the engine at +100 ms
    clock.advance(60)
    sandbox.config.cancel_delay_ms = 300
    sandbox.cancel(alice, BTC, order.order_id)  # answered now, applied at +360 ms
    clock.advance(40)
    sandbox.apply_due()
    assert order.status is OrderStatus.FILLED
    clock.advance(1000)
    sandbox.apply_due()
    assert order.status is OrderStatus.FILLED
    assert sandbox.engine.audit() == []


def test_submit_when_listing_delay_zero_then_applied_at_once(clock: ManualClock) -> None:
    sb = Sandbox(SandboxConfig(market_maker=False, listing_delay_ms=0), clock=clock)
    alice = funded(sb, "alice")
    limit(sb, alice, Side.BUY, "0.01", "30000")
    assert len(sb.engine.open_orders(alice, BTC)) == 1


def test_faults_when_listing_delay_overridden_then_used(
    sandbox: Sandbox, clock: ManualClock
) -> None:
    sandbox.faults.update({"listing_delay_ms": 1000})
    alice = funded(sandbox, "alice")
    limit(sandbox, alice, Side.BUY, "0.01", "30000")
    clock.advance(999)
    sandbox.apply_due()
    assert sandbox.engine.open_orders(alice, BTC) == []
    clock.advance(1)
    sandbox.apply_due()
    assert len(sandbox.engine.open_orders(alice, BTC)) == 1


def test_market_maker_when_switched_on_then_books_quoted_and_off_then_withdrawn(
    sandbox: Sandbox,
) -> None:
    sandbox.set_market_maker(True)
    depth = sandbox.engine.depth(BTC)
    assert depth.bids
    assert depth.asks
    sandbox.set_market_maker(False)
    depth = sandbox.engine.depth(BTC)
    assert (depth.bids, depth.asks) == ([], [])
    assert sandbox.engine.audit() == []


def test_reset_when_called_then_only_the_admin_is_left(sandbox: Sandbox) -> None:
    funded(sandbox, "alice")
    sandbox.reset()
    assert list(sandbox.users.by_uuid) == [ADMIN_UUID]
    assert sandbox.users.api_keys["sandbox-admin-key"].user == ADMIN_UUID


@pytest.mark.parametrize(
    ("order_type", "fields", "param"),
    [
        (OrderType.LIMIT, {"quantity": D(1), "time_in_force": TimeInForce.GTC}, "price"),
        (OrderType.LIMIT, {"price": D(1), "quantity": D(1)}, "timeInForce"),
        (OrderType.MARKET, {}, "quoteOrderQty"),
        (OrderType.MARKET, {"quantity": D(0)}, "quantity"),
        (OrderType.STOP_LOSS, {"quantity": D(1)}, "stopPrice"),
        (
            OrderType.TAKE_PROFIT_LIMIT,
            {"price": D(1), "quantity": D(1), "stop_price": D(1)},
            "timeInForce",
        ),
        (OrderType.LIMIT_MAKER, {"price": D(1)}, "quantity"),
    ],
)
def test_validate_new_order_when_field_missing_then_1020_naming_it(
    order_type: OrderType, fields: dict[str, object], param: str
) -> None:
    values: dict[str, object] = {
        "price": None,
        "quantity": None,
        "time_in_force": None,
        "stop_price": None,
        "quote_order_qty": None,
    } | fields
    with pytest.raises(InvalidRequestParam) as err:
        validate_new_order(order_type, **values)  # type: ignore[arg-type]
    assert err.value.param == param


def test_apply_due_when_cancel_falls_due_before_a_placement_then_applied_first(
    sandbox: Sandbox, clock: ManualClock
) -> None:
    alice, bob = funded(sandbox, "alice"), funded(sandbox, "bob")
    limit(sandbox, alice, Side.SELL, "0.01", "30000")
    clock.advance(100)
    sandbox.apply_due()
    [order] = sandbox.engine.open_orders(alice, BTC)
    limit(sandbox, bob, Side.BUY, "0.01", "30000")  # due at +100
    clock.advance(10)
    sandbox.cancel(alice, BTC, order.order_id)  # due at +60: before the buy
    clock.advance(200)
    sandbox.apply_due()  # both due in one step: the cancel goes first
    assert order.status is OrderStatus.CANCELED
    [bid] = sandbox.engine.open_orders(bob, BTC)
    assert bid.status is OrderStatus.NEW
