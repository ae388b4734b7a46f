"""Late fills: OPEX answers a cancel CANCELED at once while its matching engine may still
trade, so the gateway can learn a fill after an order's terminal event. It then re-states
OrderCanceled/OrderExpired with ``last_fill`` and a higher cumulative quantity, or
publishes OrderFilled (FILLED) when the whole quantity traded. Such a fill moves the
position, the balances, the realised P&L and the day's loss exactly once; the reservation
was released at the first terminal event and nothing is released again."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Any
from uuid import UUID

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.risk_engine.config import RiskLimits
from services.risk_engine.domain import Approved, Outgoing, RiskEngine
from services.risk_engine.domain.amounts import PNL
from shared.contracts import (
    Balance,
    BalanceSource,
    BalancesUpdated,
    Fill,
    Liquidity,
    Message,
    OrderAccepted,
    OrderCanceled,
    OrderEvent,
    OrderExpired,
    OrderFilled,
    OrderStatus,
    PositionUpdated,
    Side,
    TradingState,
    TradingStateChanged,
    UserProvisioned,
)
from tests.unit.risk_engine.scenario import BTC, START_MS, USER, World, at, instrument, ready_world

D = Decimal
ZERO = D(0)
_AVG = Context(prec=60)
_QUANTUM = D(1).scaleb(-18)


def average(notional: Decimal, quantity: Decimal) -> Decimal:
    """What the gateway publishes as ``avg_price``: 18 decimals, half-even."""
    return _AVG.divide(notional, quantity).quantize(_QUANTUM, ROUND_HALF_EVEN, _AVG).normalize(_AVG)


@dataclass
class GatewayOrder:
    """The gateway's view of one order: it publishes cumulative state after each step."""

    approved: Approved
    filled: Decimal = ZERO
    notional: Decimal = ZERO
    terminal: type[OrderCanceled | OrderExpired] | None = None
    trades: int = 0
    trade_prefix: str = ""
    events: list[OrderEvent] = field(default_factory=list)

    def _fields(self) -> dict[str, Any]:
        command = self.approved.command
        return {
            "client_order_id": command.client_order_id,
            "order_id": f"o-{command.client_order_id}",
            "symbol": command.symbol,
            "side": command.side,
            "order_type": command.type,
            "quantity": command.quantity,
            "price": command.price,
            "filled_quantity": self.filled,
            "avg_price": average(self.notional, self.filled) if self.filled else None,
        }

    def accept(self) -> OrderAccepted:
        event = OrderAccepted.model_validate(self._fields())
        self.events.append(event)
        return event

    def trade(
        self, quantity: str | Decimal, price: str | Decimal, *, fee: str | Decimal = "0", at_ms: int
    ) -> OrderEvent:
        """A trade: OrderFilled while the order is open; after the terminal event the
        terminal event again with ``last_fill``, or FILLED once everything traded."""
        command = self.approved.command
        quantity, price = D(quantity), D(price)
        self.trades += 1
        self.filled += quantity
        self.notional += quantity * price
        fee_asset = "BTC" if command.side is Side.BUY else "USDT"  # what the side receives
        fill = Fill(
            trade_id=f"{self.trade_prefix}{command.client_order_id}-t{self.trades}",
            price=price,
            quantity=quantity,
            fee=D(fee),
            fee_asset=fee_asset,
            liquidity=Liquidity.MAKER,
            executed_at=at(at_ms),
        )
        complete = self.filled == command.quantity
        event: OrderEvent
        if self.terminal is None or complete:
            status = OrderStatus.FILLED if complete else OrderStatus.PARTIALLY_FILLED
            event = OrderFilled.model_validate(
                {**self._fields(), "status": status, "last_fill": fill}
            )
        else:
            event = self.terminal.model_validate({**self._fields(), "last_fill": fill})
        self.events.append(event)
        return event

    def end(self, how: type[OrderCanceled | OrderExpired] = OrderCanceled) -> OrderEvent:
        self.terminal = how
        event = how.model_validate(self._fields())
        self.events.append(event)
        return event


def deliver(world: World, event: OrderEvent, user: str = USER) -> list[Outgoing]:
    return world.engine.on_order_event(user, event, world.clock.now)


def positions_of(out: Iterable[Outgoing]) -> list[PositionUpdated]:
    return [o.message for o in out if isinstance(o.message, PositionUpdated)]


def canceled_buy(world: World, quantity: str = "0.3") -> GatewayOrder:
    """USER's limit buy of ``quantity`` BTC at 50,000: accepted, 0.1 traded at 50,000, then
    canceled (OPEX answered CANCELED at once)."""
    order = GatewayOrder(world.approved(Side.BUY, quantity, "50000"))
    deliver(world, order.accept())
    world.clock.advance(10)
    deliver(world, order.trade("0.1", "50000", at_ms=world.clock.advance(10)))
    world.clock.advance(10)
    deliver(world, order.end(OrderCanceled))
    world.clock.advance(10)
    return order


# ------------------------------------------------------------------------------ examples


def test_late_fill_when_cancel_is_restated_with_last_fill_then_position_and_balances_move() -> None:
    world = ready_world()
    order = canceled_buy(world)
    account = world.engine.state.accounts[USER]
    assert account.reserved == {}
    assert account.totals == {"USDT": D("95000"), "BTC": D("2.1")}

    out = deliver(world, order.trade("0.05", "49900", fee="0.00005", at_ms=world.clock.advance(10)))

    position = account.positions[BTC]
    assert position.quantity == D("0.15")
    assert position.avg_entry == PNL.divide(D("5000") + D("2495"), D("0.15"))
    assert position.realized_pnl == D("-0.00005") * D("49900")  # the BTC fee at the fill price
    assert (position.open_buy, position.open_sell) == (ZERO, ZERO)
    assert account.totals == {"USDT": D("95000") - D("2495"), "BTC": D("2.15") - D("0.00005")}
    assert account.reserved == {}  # released at the cancel, not again
    assert account.closed_orders[order.approved.command.client_order_id].reserved == 0
    updates = positions_of(out)
    assert [u.quantity for u in updates] == [D("0.15")]
    assert updates[0].realized_pnl == D("-2.495")


def test_late_fill_when_order_ends_filled_after_cancel_then_applied_and_status_filled() -> None:
    world = ready_world()
    order = canceled_buy(world, quantity="0.2")

    out = deliver(world, order.trade("0.1", "50000", at_ms=world.clock.advance(10)))

    assert isinstance(order.events[-1], OrderFilled)
    assert order.events[-1].status is OrderStatus.FILLED
    account = world.engine.state.accounts[USER]
    assert account.positions[BTC].quantity == D("0.2")
    assert account.totals == {"USDT": D("90000"), "BTC": D("2.2")}
    assert account.closed_orders[order.approved.command.client_order_id].closed_as is (
        OrderStatus.FILLED
    )
    assert [u.quantity for u in positions_of(out)] == [D("0.2")]


def test_late_fill_when_order_expired_then_applied() -> None:
    world = ready_world()
    order = GatewayOrder(world.approved(Side.SELL, "0.5", "50000"))
    assert world.engine.state.accounts[USER].reserved == {"BTC": D("0.5")}
    deliver(world, order.end(OrderExpired))
    assert world.engine.state.accounts[USER].reserved == {}

    out = deliver(world, order.trade("0.2", "50100", fee="10.02", at_ms=world.clock.advance(10)))

    account = world.engine.state.accounts[USER]
    assert isinstance(order.events[-1], OrderExpired)
    assert account.positions[BTC].quantity == D("-0.2")
    assert account.positions[BTC].realized_pnl == D("-10.02")
    assert account.totals == {"USDT": D("100000") + D("10020") - D("10.02"), "BTC": D("1.8")}
    assert account.reserved == {}
    assert len(positions_of(out)) == 1


def test_late_fill_when_redelivered_or_restated_again_then_counted_once() -> None:
    world = ready_world()
    order = canceled_buy(world)
    late = order.trade("0.05", "49900", at_ms=world.clock.advance(10))
    deliver(world, late)
    account = world.engine.state.accounts[USER]
    after = (account.positions[BTC].quantity, dict(account.totals or {}))

    again = deliver(world, late)
    first_cancel = deliver(world, order.events[2])  # the first OrderCanceled, redelivered
    older = deliver(world, order.events[1])  # the fill before the cancel, redelivered

    assert again == first_cancel == older == []
    assert (account.positions[BTC].quantity, account.totals) == after
    assert account.reserved == {}


def test_late_fill_when_a_later_cumulative_state_arrives_first_then_the_trade_adds_only_its_fee() -> (
    None
):
    world = ready_world()
    order = canceled_buy(world)
    first = order.trade("0.05", "49900", fee="0.00005", at_ms=world.clock.advance(10))
    second = order.trade("0.05", "50000", fee="0.00005", at_ms=world.clock.advance(10))

    deliver(world, second)  # implies the first trade at its price, without its fee
    account = world.engine.state.accounts[USER]
    assert account.positions[BTC].quantity == D("0.2")
    assert account.totals == {
        "USDT": D("95000") - D("2495") - D("2500"),
        "BTC": D("2.2") - D("0.00005"),
    }
    out = deliver(world, first)

    assert account.positions[BTC].quantity == D("0.2")
    assert account.totals == {
        "USDT": D("95000") - D("2495") - D("2500"),
        "BTC": D("2.2") - D("0.0001"),
    }
    assert [u.quantity for u in positions_of(out)] == [D("0.2")]
    assert deliver(world, first) == []


def test_late_fill_when_it_realises_the_daily_loss_limit_then_user_goes_reducing() -> None:
    world = ready_world(RiskLimits(max_daily_loss=D(1000)))
    bought = GatewayOrder(world.approved(Side.BUY, "1", "50000"))
    deliver(world, bought.trade("1", "50000", at_ms=world.clock.advance(10)))
    world.price(BTC, "50000")
    sold = GatewayOrder(world.approved(Side.SELL, "1", "48000", type=None))
    deliver(world, sold.end(OrderCanceled))
    account = world.engine.state.accounts[USER]
    before = account.trading.state

    out = deliver(world, sold.trade("1", "48000", at_ms=world.clock.advance(10)))

    assert account.positions[BTC].realized_pnl == D(-2000)
    changes = [o.message for o in out if isinstance(o.message, TradingStateChanged)]
    assert [c.state for c in changes] == [TradingState.REDUCING]
    assert (before, account.trading.state) == (TradingState.ACTIVE, TradingState.REDUCING)


def test_late_fill_when_other_orders_hold_reservations_then_theirs_are_untouched() -> None:
    world = ready_world()
    order = canceled_buy(world)
    other = world.approved(Side.BUY, "0.1", "50000")
    account = world.engine.state.accounts[USER]
    held = dict(account.reserved)
    assert held == {"USDT": other.amount}

    deliver(world, order.trade("0.1", "50000", at_ms=world.clock.advance(10)))

    assert account.reserved == held
    assert account.positions[BTC].open_buy == D("0.1")  # the other order's, still open


def test_event_when_closed_order_learns_nothing_new_then_ignored_and_counted() -> None:
    world = ready_world()
    order = canceled_buy(world)
    ignored = world.engine.state.ignored_events

    assert deliver(world, order.end(OrderCanceled)) == []

    assert world.engine.state.ignored_events == ignored + 1


def test_replay_when_history_has_late_fills_then_state_rebuilt_exactly() -> None:
    world = ready_world()
    order = GatewayOrder(world.approved(Side.BUY, "0.3", "50000"))
    history: list[tuple[str, Message, int]] = [(USER, order.approved.to_message(), START_MS)]
    for event in (
        order.accept(),
        order.trade("0.1", "50000", fee="0.0001", at_ms=world.clock.advance(10)),
        order.end(OrderCanceled),
        order.trade("0.1", "49000", fee="0.0001", at_ms=world.clock.advance(10)),
        order.trade("0.1", "49500", at_ms=world.clock.advance(10)),
    ):
        deliver(world, event)
        history.append((USER, event, world.clock.now))

    rebuilt = RiskEngine(clock=world.clock)
    rebuilt.replay(None, instrument(), START_MS)
    rebuilt.replay(USER, UserProvisioned(opex_user_id=UUID(int=42)), START_MS)
    rebuilt.replay(USER, funding(USDT="100000", BTC="2"), START_MS)
    for user_id, message, at_ms in history:
        rebuilt.replay(user_id, message, at_ms)

    old, new = world.engine.state.accounts[USER], rebuilt.state.accounts[USER]
    assert old.positions[BTC].quantity == D("0.3")
    assert new.positions[BTC] == old.positions[BTC]
    assert new.totals == old.totals
    assert new.reserved == old.reserved == {}
    assert new.closed_orders == old.closed_orders


def funding(**balances: str) -> BalancesUpdated:
    return BalancesUpdated(
        balances=tuple(Balance(asset=a, free=D(v)) for a, v in balances.items()),
        source=BalanceSource.OPEX,
    )


# -------------------------------------------------------------------------- properties

UNIT = D("0.01")
START_USDT, START_BTC = D(100_000), D(2)


@dataclass(frozen=True)
class OrderScript:
    """One order as the gateway saw it: its trades (quantity in hundredths, price, fee
    or not) and after how many of them the terminal event came."""

    side: Side
    quantity: int
    trades: tuple[tuple[int, int, bool], ...]
    ends_after: int
    how: type[OrderCanceled | OrderExpired]


@st.composite
def order_scripts(draw: st.DrawFn) -> OrderScript:
    side = draw(st.sampled_from([Side.BUY, Side.SELL]))
    quantity = draw(st.integers(2, 40))
    sizes = draw(st.lists(st.integers(1, 12), max_size=5))
    kept: list[int] = []
    for size in sizes:
        if sum(kept) + size > quantity:
            break
        kept.append(size)
    whole: bool = draw(st.booleans())
    if kept and whole:  # sometimes the whole quantity trades
        kept[-1] += quantity - sum(kept)
    low, high = (49_900, 50_000) if side is Side.BUY else (50_000, 50_100)
    trades = tuple((size, draw(st.integers(low, high)), draw(st.booleans())) for size in kept)
    ends_after = draw(st.integers(0, len(trades)))
    kinds: list[type[OrderCanceled | OrderExpired]] = [OrderCanceled, OrderExpired]
    how = draw(st.sampled_from(kinds))
    return OrderScript(side, quantity, trades, ends_after, how)


@dataclass(frozen=True)
class Script:
    orders: tuple[OrderScript, ...]
    order_of_events: tuple[int, ...]
    """Which order's next event comes next: an interleaving of the orders' streams."""
    other_order: tuple[int, ...]
    """Another interleaving of the same streams."""
    copies: tuple[tuple[int, int], ...]
    """(event position, how far after it) of redelivered copies."""


def _events_of(script: OrderScript) -> int:
    complete = sum(size for size, _, _ in script.trades) == script.quantity
    ends = not (complete and script.ends_after == len(script.trades))
    return 1 + len(script.trades) + int(ends)


@st.composite
def scripts(draw: st.DrawFn) -> Script:
    orders = tuple(draw(st.lists(order_scripts(), min_size=1, max_size=3)))
    slots = [i for i, order in enumerate(orders) for _ in range(_events_of(order))]
    first = tuple(draw(st.permutations(slots)))
    second = tuple(draw(st.permutations(slots)))
    copies = tuple(
        draw(
            st.lists(
                st.tuples(st.integers(0, len(slots) - 1), st.integers(0, len(slots))), max_size=8
            )
        )
    )
    return Script(orders, first, second, copies)


def _gateway_streams(world: World, script: Script) -> list[list[OrderEvent]]:
    """Approve every order, then let the gateway write each order's events (times are
    the gateway's: after the balances snapshot)."""
    streams: list[list[OrderEvent]] = []
    executed = START_MS
    for n, spec in enumerate(script.orders):
        quantity = str(spec.quantity * UNIT)
        price = "50000"
        order = GatewayOrder(world.approved(spec.side, quantity, price, coid=f"p{n}"))
        order.accept()
        for k, (size, trade_price, with_fee) in enumerate(spec.trades):
            if k == spec.ends_after:
                order.end(spec.how)
            executed += 1
            amount = size * UNIT
            fee = amount / 1000 if spec.side is Side.BUY else amount * trade_price / 1000
            order.trade(amount, D(trade_price), fee=fee if with_fee else ZERO, at_ms=executed)
        if order.filled < order.approved.command.quantity and spec.ends_after == len(spec.trades):
            order.end(spec.how)
        assert len(order.events) == _events_of(spec)
        streams.append(order.events)
    return streams


def _interleave(
    streams: list[list[OrderEvent]], order_of_events: tuple[int, ...]
) -> list[OrderEvent]:
    cursors = [0] * len(streams)
    merged = []
    for n in order_of_events:
        merged.append(streams[n][cursors[n]])
        cursors[n] += 1
    return merged


def _with_copies(events: list[OrderEvent], copies: tuple[tuple[int, int], ...]) -> list[OrderEvent]:
    delivered = list(events)
    for position, after in copies:
        original = events[position]
        at_least = delivered.index(original) + 1
        delivered.insert(min(len(delivered), at_least + after), original)
    return delivered


def _run(
    script: Script, interleaving: tuple[int, ...], copies: tuple[tuple[int, int], ...]
) -> tuple[World, list[Outgoing]]:
    world = ready_world(USDT=str(START_USDT), BTC=str(START_BTC))
    events = _with_copies(_interleave(_gateway_streams(world, script), interleaving), copies)
    account = world.engine.state.accounts[USER]
    out: list[Outgoing] = []
    for event in events:
        out.extend(deliver(world, event))
        # nothing leaks or is released twice, whatever the order
        expected: dict[str, Decimal] = {}
        for open_order in account.open_orders.values():
            assert open_order.reserved == open_order.unit * open_order.remaining
            expected[open_order.reserve_asset] = (
                expected.get(open_order.reserve_asset, D(0)) + open_order.reserved
            )
        assert account.reserved == {a: v for a, v in expected.items() if v}
        assert all(closed.reserved == 0 for closed in account.closed_orders.values())
    return world, out


def _fills(script: Script) -> tuple[Decimal, Decimal, Decimal]:
    """Position, USDT and BTC expected from the scripts' trades, each counted once."""
    position, usdt, btc = D(0), START_USDT, START_BTC
    for spec in script.orders:
        for size, price, with_fee in spec.trades:
            amount = size * UNIT
            if spec.side is Side.BUY:
                position += amount
                usdt -= amount * price
                btc += amount - (amount / 1000 if with_fee else 0)
            else:
                position -= amount
                usdt += amount * price - (amount * price / 1000 if with_fee else 0)
                btc -= amount
    return position, usdt, btc


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(script=scripts())
def test_fills_in_any_interleaving_with_any_redelivery_end_in_the_same_position_and_balances(
    script: Script,
) -> None:
    once, once_out = _run(script, script.order_of_events, ())
    doubled, doubled_out = _run(script, script.order_of_events, script.copies)
    other, _ = _run(script, script.other_order, script.copies)

    position, usdt, btc = _fills(script)
    for world in (once, doubled, other):
        account = world.engine.state.accounts[USER]
        held = account.positions[BTC]
        assert held.quantity == position
        assert account.totals == {"USDT": usdt, "BTC": btc}
        assert account.reserved == {}
        assert not account.open_orders
        assert (held.open_buy, held.open_sell) == (ZERO, ZERO)
    # redeliveries change nothing at all: same P&L, same closed orders, same messages
    first, again = once.engine.state.accounts[USER], doubled.engine.state.accounts[USER]
    assert again.positions == first.positions
    assert again.closed_orders == first.closed_orders
    assert again.trading == first.trading
    assert [o.message for o in doubled_out] == [o.message for o in once_out]
    assert len(positions_of(once_out)) == sum(len(spec.trades) for spec in script.orders)
