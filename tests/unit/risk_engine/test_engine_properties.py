"""Properties of reservations, balances and positions over random sequences of commands
and gateway events for a few users (hypothesis stateful testing).

- never over-reserve: what is available after reservations never goes below zero, and an
  approval never reserves more than was available;
- nothing leaks: the account's reservation per asset is always the sum of its open
  orders' reservations, an order at a terminal state holds nothing, and with no open
  order nothing is reserved;
- positions equal the sum of the fills, and balances the snapshot plus the fills.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from uuid import UUID

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from services.risk_engine.config import RiskLimits
from services.risk_engine.domain import Approved, CancelPassed, Limits, ManualClock, RiskEngine
from shared.contracts import (
    Balance,
    BalanceSource,
    BalancesUpdated,
    CancelOrder,
    ClosePosition,
    Fill,
    Liquidity,
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderFailed,
    OrderFilled,
    OrderRejected,
    OrderStatus,
    OrderType,
    PlaceOrder,
    RejectReason,
    RejectSource,
    Side,
    TickerUpdated,
    TimeInForce,
    UserProvisioned,
)
from tests.unit.risk_engine.scenario import START_MS, at, instrument

D = Decimal
SYMBOL = "BTC_USDT"
USERS = ("1", "2", "3")
START = {"USDT": D(800), "BTC": D(6)}
CENT = D("0.01")
ZERO = D(0)

users = st.sampled_from(USERS)
sides = st.sampled_from([Side.BUY, Side.SELL])
prices = st.integers(96, 104).map(D)
quantities = st.integers(1, 400).map(lambda n: D(n) / 100)


@dataclass
class Live:
    """An approved order as the test's model sees it."""

    user: str
    command: PlaceOrder
    max_fill_price: Decimal
    filled: Decimal = ZERO
    notional: Decimal = ZERO
    trades: int = 0
    closed: bool = False

    @property
    def remaining(self) -> Decimal:
        return self.command.quantity - self.filled


class RiskEngineMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock(START_MS)
        limits = RiskLimits(
            max_orders_per_second=10_000,
            max_orders_per_minute=100_000,
            max_open_orders=10_000,
            max_daily_loss=D(10**9),
        )
        self.engine = RiskEngine(limits=Limits(limits), clock=self.clock)
        self.reference = D(100)
        self.positions = dict.fromkeys(USERS, D(0))
        self.totals = {user: dict(START) for user in USERS}
        self.live: list[Live] = []
        self.next_id = 0

    @initialize()
    def open_accounts(self) -> None:
        self.engine.on_instrument(
            instrument(SYMBOL, price_step="1", quantity_step="0.01", min_value="1")
        )
        self.tick(self.reference)
        for user in USERS:
            self.engine.on_user_provisioned(
                user, UserProvisioned(opex_user_id=f"00000000-0000-4000-8000-00000000000{user}"), 0
            )
            self.snapshot(user)
        self.place("1", Side.BUY, D(1), D(100), market=False)
        self.place("2", Side.SELL, D(2), D(99), market=False)
        assert len(self.live) == 2

    # ------------------------------------------------------------------ helpers

    def tick(self, price: Decimal) -> None:
        self.clock.advance(1)
        self.reference = price
        self.engine.on_ticker(TickerUpdated(symbol=SYMBOL, last_price=price, at=at(self.clock.now)))

    def snapshot(self, user: str) -> None:
        balances = tuple(
            Balance(asset=asset, free=amount) for asset, amount in self.totals[user].items()
        )
        drifts = self.engine.on_balances(
            user, BalancesUpdated(balances=balances, source=BalanceSource.OPEX), self.clock.now
        )
        assert drifts == []

    def event_fields(self, order: Live) -> dict[str, object]:
        command = order.command
        return {
            "client_order_id": command.client_order_id,
            "symbol": SYMBOL,
            "side": command.side,
            "order_type": command.type,
            "quantity": command.quantity,
            "price": command.price,
            "filled_quantity": order.filled,
            "avg_price": (order.notional / order.filled).quantize(D("1e-8"))
            if order.filled
            else None,
        }

    # -------------------------------------------------------------------- rules

    def pick(self, data: st.DataObject) -> Live:
        return data.draw(st.sampled_from([order for order in self.live if not order.closed]))

    def has_open(self) -> bool:
        return any(not order.closed for order in self.live)

    @rule(user=users, side=sides, quantity=quantities, price=prices, market=st.booleans())
    def place(self, user: str, side: Side, quantity: Decimal, price: Decimal, market: bool) -> None:
        self.tick(self.reference)
        self.next_id += 1
        fields: dict[str, object] = {
            "client_order_id": f"c{self.next_id}",
            "symbol": SYMBOL,
            "side": side,
            "quantity": quantity,
        }
        if market:
            fields.update(type=OrderType.MARKET, time_in_force=TimeInForce.IOC)
        else:
            fields.update(type=OrderType.LIMIT, price=price)
        command = PlaceOrder.model_validate(fields)
        account = self.engine.state.accounts[user]
        decision = self.engine.decide_place(user, command)
        event("place", "approved" if isinstance(decision, Approved) else str(decision.code))
        if not isinstance(decision, Approved):
            return
        available = account.available(decision.asset)
        assert available is not None
        assert available >= 0, "approval reserved more than was available"
        cap = price if not market else self.reference * D("1.05")
        self.live.append(Live(user, command, max_fill_price=cap if side is Side.BUY else D(104)))

    @rule(user=users, part=st.sampled_from([None, D("0.01"), D("0.5")]))
    def close_position(self, user: str, part: Decimal | None) -> None:
        """A ClosePosition: a reduce-only market order through the same checks."""
        self.tick(self.reference)
        self.next_id += 1
        decision = self.engine.decide_close_position(
            user,
            ClosePosition(symbol=SYMBOL, quantity=part),
            command_id=UUID(int=self.next_id),
        )
        if not isinstance(decision, Approved):
            return
        command = decision.command
        assert command.reduce_only
        assert command.type is OrderType.MARKET
        cap = self.reference * D("1.05") if command.side is Side.BUY else D(104)
        self.live.append(Live(user, command, max_fill_price=cap))

    @precondition(has_open)
    @rule(data=st.data())
    def accept(self, data: st.DataObject) -> None:
        order = self.pick(data)
        self.engine.on_order_event(
            order.user,
            OrderAccepted.model_validate(
                {**self.event_fields(order), "order_id": f"o-{order.command.client_order_id}"}
            ),
            self.clock.now,
        )

    @precondition(has_open)
    @rule(data=st.data(), part=st.integers(1, 100), price=prices, fee=st.booleans())
    def fill(self, data: st.DataObject, part: int, price: Decimal, fee: bool) -> None:
        order = self.pick(data)
        quantity = max(CENT, (order.remaining * part / 100).quantize(CENT))
        quantity = min(quantity, order.remaining)
        price = min(price, order.max_fill_price).quantize(D(1), rounding="ROUND_FLOOR")
        side = order.command.side
        # OPEX charges each side's fee in what it receives
        fee_asset = "BTC" if side is Side.BUY else "USDT"
        fee_amount = D(0)
        if fee:
            fee_amount = (quantity if side is Side.BUY else quantity * price) * D("0.001")
        self.clock.advance(1)
        order.filled += quantity
        order.notional += quantity * price
        order.trades += 1
        trade_id = f"t-{order.command.client_order_id}-{order.trades}"
        complete = order.filled == order.command.quantity
        self.engine.on_order_event(
            order.user,
            OrderFilled.model_validate(
                {
                    **self.event_fields(order),
                    "status": OrderStatus.FILLED if complete else OrderStatus.PARTIALLY_FILLED,
                    "last_fill": Fill(
                        trade_id=trade_id,
                        price=price,
                        quantity=quantity,
                        fee=fee_amount,
                        fee_asset=fee_asset,
                        liquidity=Liquidity.TAKER,
                        executed_at=at(self.clock.now),
                    ),
                }
            ),
            self.clock.now,
        )
        signed = quantity if side is Side.BUY else -quantity
        self.positions[order.user] += signed
        totals = self.totals[order.user]
        totals["BTC"] += signed
        totals["USDT"] -= signed * price
        totals[fee_asset] -= fee_amount
        if complete:
            order.closed = True

    @precondition(lambda self: any(order.trades for order in self.live))
    @rule(data=st.data())
    def redeliver_last_fill(self, data: st.DataObject) -> None:
        """The same fill event again (at-least-once delivery) changes nothing."""
        order = data.draw(st.sampled_from([order for order in self.live if order.trades]))
        account = self.engine.state.accounts[order.user]
        before = (account.positions[SYMBOL].quantity, dict(account.reserved))
        self.engine.on_order_event(
            order.user,
            OrderFilled.model_validate(
                {
                    **self.event_fields(order),
                    "status": OrderStatus.FILLED
                    if order.filled == order.command.quantity
                    else OrderStatus.PARTIALLY_FILLED,
                    "last_fill": Fill(
                        trade_id=f"t-{order.command.client_order_id}-{order.trades}",
                        price=D(100),
                        quantity=min(order.filled, order.command.quantity),
                        fee=D(0),
                        fee_asset="USDT",
                        liquidity=Liquidity.TAKER,
                    ),
                }
            ),
            self.clock.now,
        )
        assert (account.positions[SYMBOL].quantity, dict(account.reserved)) == before

    @precondition(has_open)
    @rule(
        data=st.data(),
        how=st.sampled_from([OrderCanceled, OrderExpired, OrderRejected, OrderFailed]),
    )
    def terminate(
        self,
        data: st.DataObject,
        how: type[OrderCanceled | OrderExpired | OrderRejected | OrderFailed],
    ) -> None:
        order = self.pick(data)
        if how is OrderCanceled:
            cancel = CancelOrder(symbol=SYMBOL, client_order_id=order.command.client_order_id)
            assert isinstance(self.engine.decide_cancel(order.user, cancel), CancelPassed)
        fields = self.event_fields(order)
        if how is OrderRejected:
            fields.update(
                source=RejectSource.EXCHANGE,
                reason_code=RejectReason.EXCHANGE_REJECTED,
                reason="refused",
            )
        elif how is OrderFailed:
            fields.update(reason_code=RejectReason.EXCHANGE_UNAVAILABLE, reason="down")
        self.engine.on_order_event(order.user, how.model_validate(fields), self.clock.now)
        order.closed = True
        assert (
            order.command.client_order_id not in self.engine.state.accounts[order.user].open_orders
        )

    @rule(price=prices)
    def move_market(self, price: Decimal) -> None:
        self.tick(price)

    @rule(user=users)
    def opex_snapshot(self, user: str) -> None:
        """OPEX's balances agree with the fills: no drift, nothing changes."""
        self.clock.advance(1)
        self.snapshot(user)

    @precondition(has_open)
    @rule()
    def close_everything(self) -> None:
        for order in self.live:
            if not order.closed:
                self.engine.on_order_event(
                    order.user,
                    OrderCanceled.model_validate(self.event_fields(order)),
                    self.clock.now,
                )
                order.closed = True

    # --------------------------------------------------------------- invariants

    @invariant()
    def reservations_are_the_sum_of_open_orders(self) -> None:
        for user in USERS:
            account = self.engine.state.accounts[user]
            expected: dict[str, Decimal] = {}
            for open_order in account.open_orders.values():
                assert open_order.reserved == open_order.unit * open_order.remaining
                asset = open_order.reserve_asset
                expected[asset] = expected.get(asset, D(0)) + open_order.reserved
            assert {a: v for a, v in expected.items() if v} == account.reserved
            assert all(amount > 0 for amount in account.reserved.values())

    @invariant()
    def open_orders_are_the_unclosed_ones(self) -> None:
        for user in USERS:
            open_ids = set(self.engine.state.accounts[user].open_orders)
            expected = {
                o.command.client_order_id for o in self.live if o.user == user and not o.closed
            }
            assert open_ids == expected
        if all(order.closed for order in self.live):
            for user in USERS:
                assert self.engine.state.accounts[user].reserved == {}

    @invariant()
    def never_over_reserved(self) -> None:
        for user in USERS:
            account = self.engine.state.accounts[user]
            for asset in ("USDT", "BTC"):
                available = account.available(asset)
                assert available is not None
                assert available >= 0, (user, asset, available)

    @invariant()
    def positions_are_the_sum_of_fills(self) -> None:
        for user in USERS:
            account = self.engine.state.accounts[user]
            position = account.positions.get(SYMBOL)
            assert (position.quantity if position else D(0)) == self.positions[user]
            if position is not None:
                buys = sum(
                    (
                        o.remaining
                        for o in self.live
                        if o.user == user and not o.closed and o.command.side is Side.BUY
                    ),
                    D(0),
                )
                sells = sum(
                    (
                        o.remaining
                        for o in self.live
                        if o.user == user and not o.closed and o.command.side is Side.SELL
                    ),
                    D(0),
                )
                assert (position.open_buy, position.open_sell) == (buys, sells)

    @invariant()
    def balances_are_the_snapshot_plus_the_fills(self) -> None:
        for user in USERS:
            totals = self.engine.state.accounts[user].totals
            assert totals is not None
            assert totals == self.totals[user]


RiskEngineMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestRiskEngineProperties = RiskEngineMachine.TestCase
