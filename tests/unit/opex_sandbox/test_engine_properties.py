"""Properties of the matching engine over random sequences of operations from several funded
users on one pair (hypothesis stateful testing)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from decimal import Decimal
from typing import TypeVar

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from services.opex_sandbox.domain import (
    FEE_ACCOUNT,
    ManualClock,
    MatchingEngine,
    OpexError,
    Order,
    OrderStatus,
    OrderType,
    Pair,
    PairRegistry,
    Side,
    TimeInForce,
    Wallets,
)

D = Decimal
SYMBOL = "BTC_USDT"
USERS = ["u0", "u1", "u2"]
ASSETS = ["BTC", "USDT"]

users = st.sampled_from(USERS)
sides = st.sampled_from([Side.BUY, Side.SELL])
prices = st.integers(95, 105).map(D)
quantities = st.integers(1, 150).map(lambda n: D(n) / 100)


T = TypeVar("T")


def attempt(action: Callable[[], T]) -> T | OpexError:
    try:
        return action()
    except OpexError as exc:
        return exc


def small_pair() -> Pair:
    return Pair(
        SYMBOL,
        "BTC",
        "USDT",
        price_step=D(1),
        quantity_step=D("0.01"),
        min_order=D(1),
        max_order=D(1_000_000),
        is_available=True,
        maker_fee=D("0.001"),
        taker_fee=D("0.002"),
    )


class EngineMachine(RuleBasedStateMachine):
    fok_supported = False

    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock()
        self.wallets = Wallets()
        self.engine = MatchingEngine(
            PairRegistry([small_pair()]),
            self.wallets,
            self.clock,
            fok_supported=self.fok_supported,
        )
        self.deposited: dict[str, Decimal] = defaultdict(Decimal)
        self.orders: dict[int, Order] = {}
        self.filled: dict[int, Decimal] = defaultdict(Decimal)
        for user in USERS:
            self.wallets.create_user(user)
            self._deposit(user, "BTC", D(3))
            self._deposit(user, "USDT", D(400))

    def _deposit(self, user: str, asset: str, amount: Decimal) -> None:
        self.wallets.deposit(user, asset, amount)
        self.deposited[asset] += amount

    def _snapshot(self) -> dict[tuple[str, str], tuple[Decimal, Decimal]]:
        return {k: (b.free, b.locked) for k, b in self.wallets.accounts.items()}

    def _place(
        self,
        user: str,
        side: Side,
        order_type: OrderType,
        tif: TimeInForce,
        qty: Decimal,
        price: Decimal | None,
    ) -> None:
        before = self._snapshot()
        # the expected queue, derived independently of the book's own structure: better price
        # first, then arrival (order ids grow with arrival)
        resting = [
            o for u in USERS for o in self.engine.open_orders(u, SYMBOL) if o.side is not side
        ]
        resting.sort(key=lambda o: (o.price if side is Side.BUY else -o.price, o.order_id))
        opposite = [(o.order_id, o.remaining_qty, o.price) for o in resting]
        result = attempt(lambda: self.engine.place(user, SYMBOL, side, order_type, tif, qty, price))
        if isinstance(result, OpexError):
            event(f"refused {result.code}")
            assert result.code in {1020, 4001, 4003}, result
            assert self._snapshot() == before, "a refused order changed balances"
            return
        order, trades = result.order, result.trades
        event(f"{order_type} {tif} -> {order.status}, {min(len(trades), 3)}+ trades")
        if order.status is OrderStatus.REJECTED:
            assert order.order_id == 0
            assert trades == []
            assert self._snapshot() == before
            return
        self.orders[order.order_id] = order

        # price-time priority: the makers hit are the head of the opposite queue, in order,
        # all but the last one consumed entirely
        buy = side is Side.BUY
        makers = [t.seller_order_id if buy else t.buyer_order_id for t in trades]
        assert makers == [oid for oid, _, _ in opposite[: len(makers)]]
        for trade, (_, remaining, maker_price) in zip(trades, opposite, strict=False):
            assert trade.price == maker_price
            assert trade.qty <= remaining
        for trade, (_, remaining, _) in zip(trades[:-1], opposite, strict=False):
            assert trade.qty == remaining
        if order_type is OrderType.LIMIT and price is not None:
            assert all(t.price <= price if buy else t.price >= price for t in trades)
        ps = [t.price for t in trades]
        assert ps == sorted(ps, reverse=not buy)

        for trade in trades:
            self.filled[trade.buyer_order_id] += trade.qty
            self.filled[trade.seller_order_id] += trade.qty
            assert trade.quote_qty == trade.price * trade.qty

        if tif is TimeInForce.FOK:
            assert order.status in {OrderStatus.FILLED, OrderStatus.EXPIRED}
            if order.status is OrderStatus.EXPIRED:
                assert trades == []
        if tif is TimeInForce.IOC:
            assert order.status in {OrderStatus.FILLED, OrderStatus.CANCELED}
        if tif is TimeInForce.GTC and order.status.is_working:
            assert (order.status is OrderStatus.PARTIALLY_FILLED) == bool(trades)

    @rule(user=users, side=sides, price=prices, qty=quantities,
          tif=st.sampled_from(list(TimeInForce)))  # fmt: skip
    def place_limit(
        self, user: str, side: Side, price: Decimal, qty: Decimal, tif: TimeInForce
    ) -> None:
        self._place(user, side, OrderType.LIMIT, tif, qty, price)

    @rule(user=users, side=sides, price=st.none() | prices, qty=quantities,
          tif=st.sampled_from(list(TimeInForce)))  # fmt: skip
    def place_market(
        self, user: str, side: Side, price: Decimal | None, qty: Decimal, tif: TimeInForce
    ) -> None:
        self._place(user, side, OrderType.MARKET, tif, qty, price)

    @precondition(lambda self: bool(self.orders))
    @rule(data=st.data(), other_user=users)
    def cancel(self, data: st.DataObject, other_user: str) -> None:
        order = self.orders[data.draw(st.sampled_from(sorted(self.orders)))]
        status_before = order.status
        user = order.user if data.draw(st.booleans()) else other_user
        result = attempt(lambda: self.engine.cancel(user, SYMBOL, order.order_id))
        if isinstance(result, OpexError):
            if user != order.user:
                assert result.code == 7001
            else:
                assert result.code == 7006
                assert status_before in {
                    OrderStatus.FILLED,
                    OrderStatus.EXPIRED,
                    OrderStatus.REJECTED,
                }
            assert order.status is status_before
            return
        assert user == order.user
        assert result is order
        assert order.status is OrderStatus.CANCELED
        assert status_before in {
            OrderStatus.NEW,
            OrderStatus.PARTIALLY_FILLED,
            OrderStatus.CANCELED,
        }

    @rule(user=users, asset=st.sampled_from(ASSETS), amount=st.integers(1, 100).map(D))
    def deposit(self, user: str, asset: str, amount: Decimal) -> None:
        self._deposit(user, asset, amount)

    @rule(ms=st.integers(0, 5000))
    def tick(self, ms: int) -> None:
        self.clock.advance(ms)

    # -- invariants ----------------------------------------------------------------------

    @invariant()
    def engine_audit_is_clean(self) -> None:
        assert self.engine.audit() == []

    @invariant()
    def book_is_not_crossed(self) -> None:
        bid, ask = self.engine.best_bid(SYMBOL), self.engine.best_ask(SYMBOL)
        if bid is not None and ask is not None:
            assert bid[0] < ask[0]

    @invariant()
    def every_asset_is_conserved(self) -> None:
        for asset in ASSETS:
            total = sum(
                (b.free + b.locked for (_, a), b in self.wallets.accounts.items() if a == asset),
                D(0),
            )
            assert total == self.deposited[asset]

    @invariant()
    def no_balance_is_negative(self) -> None:
        for bal in self.wallets.accounts.values():
            assert bal.free >= 0
            assert bal.locked >= 0

    @invariant()
    def locks_equal_what_open_orders_hold(self) -> None:
        held: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        for user in USERS:
            for order in self.engine.open_orders(user, SYMBOL):
                need = (
                    order.remaining_qty * order.price
                    if order.side is Side.BUY
                    else order.remaining_qty
                )
                assert order.locked >= need
                held[(user, order.locked_asset)] += order.locked
        for user in [*USERS, FEE_ACCOUNT]:
            for asset in ASSETS:
                assert self.wallets.balance(user, asset).locked == held[(user, asset)]

    @invariant()
    def fills_match_trades_and_terminal_orders_hold_nothing(self) -> None:
        for order_id, order in self.orders.items():
            assert 0 <= order.executed_qty <= order.orig_qty
            assert self.filled[order_id] == order.executed_qty
            if order.status.is_terminal:
                assert order.locked == 0
            if order.status is OrderStatus.FILLED:
                assert order.executed_qty == order.orig_qty
            open_ids = {o.order_id for o in self.engine.open_orders(order.user, SYMBOL)}
            assert (order_id in open_ids) == order.is_working


class FokEngineMachine(EngineMachine):
    fok_supported = True


_settings = settings(
    max_examples=40,
    stateful_step_count=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestEngineMachine = EngineMachine.TestCase
TestEngineMachine.settings = _settings
TestFokEngineMachine = FokEngineMachine.TestCase
TestFokEngineMachine.settings = _settings
