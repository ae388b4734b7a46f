"""Book: the in-memory orders and their indexes (client order id, OPEX id, each user's
open and held orders), held stops, pruning of finished orders, and a state machine that
checks every index against a brute-force recomputation over ``orders``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from decimal import Decimal

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from services.order_gateway.domain import CancelDone, ExchangeStatus, GatewayOrder, SendCancel
from services.order_gateway.domain.book import Book, Tracked
from shared.contracts import OrderStatus, OrderType, RejectReason, Side, TimeInForce
from tests.unit.order_gateway.factories import (
    SYMBOL,
    T0,
    USER,
    accepted_order,
    approved,
    listed,
    new_order,
    sent_order,
    trade,
)

D = Decimal
S = OrderStatus
KEEP = 1_000


def _order_of(user: str, cid: str, *, symbol: str = SYMBOL, **kwargs: object) -> GatewayOrder:
    order = GatewayOrder.from_approved(user, approved(cid, **kwargs), T0)  # type: ignore[arg-type]
    order.symbol = symbol
    return order


def _stop(user: str, cid: str, stop: str = "110", side: Side = Side.BUY) -> GatewayOrder:
    return _order_of(
        user, cid, order_type=OrderType.STOP_LIMIT, price="111", stop_price=stop, side=side
    )


def _held(book: Book) -> set[tuple[str, str]]:
    return {key for by_symbol in book.stops._by_symbol.values() for key in by_symbol}


def _cancel(order: GatewayOrder, opex_id: str = "9001") -> None:
    """OPEX lists the order CANCELED (after the cancel was sent)."""
    assert isinstance(order.request_cancel(), SendCancel)
    order.on_listed(listed(opex_id, status=ExchangeStatus.CANCELED, quantity=str(order.quantity)))


# ------------------------------------------------------------------ add and touch


def test_add_when_new_order_then_held_and_open_of_its_user() -> None:
    book = Book(keep_finished_ms=KEEP)
    tracked = Tracked(new_order("c1"))
    book.add(tracked, T0)
    assert len(book) == 1
    assert "c1" in book
    assert "c2" not in book
    assert book.get("c1") is tracked
    assert book.get("c2") is None
    assert book.open_of(USER) == [tracked]
    assert list(book.of_user(USER)) == [tracked]
    assert book.users_with_open_orders() == [USER]
    assert book.claimed_ids(USER, SYMBOL) == set()
    assert book.by_opex == {}
    assert tracked.finished_at_ms is None
    assert list(book.in_flight()) == []
    assert book.in_flight_of(USER) == []


def _cids(items: Iterable[Tracked]) -> set[str]:
    return {t.client_order_id for t in items}


def test_open_of_when_several_then_per_user() -> None:
    book = Book()
    for cid in ("c3", "c1", "c2"):
        book.add(Tracked(new_order(cid)), T0)
    book.add(Tracked(_order_of("7", "d1")), T0)
    assert _cids(book.open_of(USER)) == {"c1", "c2", "c3"}
    assert len(book.open_of(USER)) == 3
    assert [t.client_order_id for t in book.open_of("7")] == ["d1"]
    assert book.open_of("nobody") == []
    assert list(book.of_user("nobody")) == []
    assert book.users_with_open_orders() == sorted([USER, "7"])


def test_in_flight_when_submitted_or_intent_recorded_then_listed_until_accepted() -> None:
    book = Book()
    waiting = Tracked(new_order("waiting"))
    recorded = Tracked(new_order("recorded"))
    sent = Tracked(sent_order("sent"))
    accepted = Tracked(accepted_order("accepted"))
    for tracked in (waiting, recorded, sent, accepted):
        book.add(tracked, T0)
    recorded.order.begin_submit(D(100), TimeInForce.GTC, T0)
    book.touch(recorded, T0)
    assert _cids(book.in_flight()) == {"recorded", "sent"}
    assert _cids(book.in_flight_of(USER)) == {"recorded", "sent"}
    assert book.in_flight_of("7") == []
    sent.order.on_listed(listed("9002"))
    book.touch(sent, T0 + 1)
    assert _cids(book.in_flight()) == {"recorded"}
    recorded.order.on_submit_not_sent()  # a 429: not in flight any more, may go again
    book.touch(recorded, T0 + 2)
    assert list(book.in_flight()) == []
    assert book.in_flight_by_user == {}


def test_touch_when_accepted_then_found_by_opex_id_and_claimed() -> None:
    book = Book()
    tracked = Tracked(sent_order("c1"))
    book.add(tracked, T0)
    assert book.by_opex_id(SYMBOL, "9001") is None
    tracked.order.on_listed(listed("9001"))
    book.touch(tracked, T0 + 5)
    assert book.by_opex_id(SYMBOL, "9001") is tracked
    assert book.by_opex_id(SYMBOL, "9002") is None
    assert book.by_opex_id("ETH_USDT", "9001") is None  # OPEX numbers orders per pair
    assert book.claimed_ids(USER, SYMBOL) == {"9001"}
    assert book.claimed_ids(USER, "ETH_USDT") == set()
    assert book.claimed_ids("7", SYMBOL) == set()


def test_touch_when_two_pairs_have_one_opex_id_then_both_indexed() -> None:
    book = Book()
    btc = Tracked(_order_of(USER, "btc"))
    eth = Tracked(_order_of(USER, "eth", symbol="ETH_USDT"))
    for tracked in (btc, eth):
        book.add(tracked, T0)
        tracked.order.opex_order_id = "5"
        book.touch(tracked, T0)
    assert book.by_opex_id(SYMBOL, "5") is btc
    assert book.by_opex_id("ETH_USDT", "5") is eth
    assert book.claimed_ids(USER, SYMBOL) == {"5"}
    assert book.claimed_ids(USER, "ETH_USDT") == {"5"}


def test_touch_when_finished_then_leaves_open_index_but_stays_claimed() -> None:
    book = Book(keep_finished_ms=KEEP)
    tracked = Tracked(accepted_order("c1"))
    other = Tracked(new_order("c2"))
    book.add(tracked, T0)
    book.add(other, T0)
    tracked.order.on_trade(trade("t1", "1"))
    assert tracked.order.status is S.FILLED
    book.touch(tracked, T0 + 10)
    assert tracked.finished_at_ms == T0 + 10
    assert book.open_of(USER) == [other]
    assert {t.client_order_id for t in book.of_user(USER)} == {"c1", "c2"}
    assert book.claimed_ids(USER, SYMBOL) == {"9001"}
    assert book.by_opex_id(SYMBOL, "9001") is tracked
    book.touch(tracked, T0 + 500)  # touched again (a late listing): finished time kept
    assert tracked.finished_at_ms == T0 + 10


def test_touch_when_last_open_order_of_user_finishes_then_user_has_no_open_orders() -> None:
    book = Book()
    tracked = Tracked(new_order("c1"))
    book.add(tracked, T0)
    tracked.order.fail(RejectReason.NO_REFERENCE_PRICE, "no price")
    book.touch(tracked, T0 + 1)
    assert book.users_with_open_orders() == []
    assert book.open_by_user == {}
    assert book.open_of(USER) == []
    assert [t.client_order_id for t in book.of_user(USER)] == ["c1"]


def test_add_when_loaded_finished_then_not_open_and_finished_now() -> None:
    book = Book()
    order = accepted_order("c1")
    _cancel(order)
    assert order.status is S.CANCELED
    tracked = Tracked(order)
    book.add(tracked, T0 + 42)
    assert book.users_with_open_orders() == []
    assert tracked.finished_at_ms == T0 + 42
    assert book.by_opex_id(SYMBOL, "9001") is tracked


# -------------------------------------------------------------------------- stops


def test_add_when_held_stop_then_registered_in_stops() -> None:
    book = Book()
    book.add(Tracked(_stop(USER, "s1")), T0)
    book.add(Tracked(new_order("plain")), T0)
    assert len(book.stops) == 1
    assert _held(book) == {(USER, "s1")}
    # touching it again keeps one entry (and its place)
    tracked = book.get("s1")
    assert tracked is not None
    book.touch(tracked, T0 + 1)
    assert len(book.stops) == 1


def test_touch_when_held_stop_canceled_then_dropped_and_never_released() -> None:
    book = Book()
    tracked = Tracked(_stop(USER, "s1"))
    book.add(tracked, T0)
    decision = tracked.order.request_cancel()
    assert isinstance(decision, CancelDone)
    book.touch(tracked, T0 + 1)
    assert len(book.stops) == 0
    assert book.stops.on_last_price(SYMBOL, D(1_000)) == []
    assert book.users_with_open_orders() == []


def test_stops_when_released_then_left_the_book_and_not_held_again_on_touch() -> None:
    book = Book()
    buy = Tracked(_stop(USER, "b", "110", Side.BUY))
    sell = Tracked(_stop("7", "s", "90", Side.SELL))
    book.add(buy, T0)
    book.add(sell, T0)
    fired = book.stops.on_last_price(SYMBOL, D(110))
    assert [(s.user_id, s.client_order_id) for s in fired] == [(USER, "b")]
    buy.order.release()
    book.touch(buy, T0 + 1)
    assert _held(book) == {("7", "s")}
    assert book.open_of(USER) == [buy]


# -------------------------------------------------------------------------- prune


def test_prune_when_finished_longer_than_keep_then_forgotten_with_opex_id() -> None:
    book = Book(keep_finished_ms=KEEP)
    done = Tracked(accepted_order("done"))
    still_open = Tracked(sent_order("open"))
    book.add(done, T0)
    book.add(still_open, T0)
    _cancel(done.order)
    book.touch(done, T0 + 100)
    assert book.prune(T0 + 100 + KEEP) == 0  # exactly keep_finished_ms: kept
    assert "done" in book
    assert book.prune(T0 + 101 + KEEP) == 1
    assert "done" not in book
    assert book.by_opex_id(SYMBOL, "9001") is None
    assert (SYMBOL, "9001") not in book.by_opex
    assert book.claimed_ids(USER, SYMBOL) == set()
    assert [t.client_order_id for t in book.of_user(USER)] == ["open"]
    assert book.prune(T0 + 10 * KEEP) == 0  # an open order is never pruned
    assert "open" in book


def test_prune_when_users_last_order_goes_then_user_forgotten() -> None:
    book = Book(keep_finished_ms=KEEP)
    tracked = Tracked(new_order("c1"))
    book.add(tracked, T0)
    tracked.order.fail(RejectReason.NO_REFERENCE_PRICE, "no price")
    book.touch(tracked, T0)
    assert book.prune(T0 + KEEP + 1) == 1
    assert book.all_by_user == {}
    assert book.orders == {}
    assert len(book) == 0


# ------------------------------------------------------------------ state machine


USERS = ("u1", "u2", "u3")
SYMBOLS = (SYMBOL, "ETH_USDT")


class BookMachine(RuleBasedStateMachine):
    """Orders come and go through the domain's own methods; after each step the indexes
    equal a recomputation from ``book.orders``, and prune forgets exactly the orders
    finished more than ``keep_finished_ms`` ago."""

    def __init__(self) -> None:
        super().__init__()
        self.book = Book(keep_finished_ms=KEEP)
        self.now = T0
        self.next_id = 0
        self.next_opex = dict.fromkeys(SYMBOLS, 10_000)  # OPEX numbers orders per pair
        self.trades = 0
        self.finished_at: dict[str, int] = {}
        self.released: set[str] = set()

    # -- helpers

    def _pick(self, data: st.DataObject, when: Callable[[Tracked], bool]) -> Tracked | None:
        candidates = [t for _, t in sorted(self.book.orders.items()) if when(t)]
        if not candidates:
            return None
        return data.draw(st.sampled_from(candidates))

    def _touch(self, tracked: Tracked) -> None:
        self.book.touch(tracked, self.now)
        if not tracked.order.is_open:
            self.finished_at.setdefault(tracked.client_order_id, self.now)

    # -- rules

    @rule(
        user=st.sampled_from(USERS),
        symbol=st.sampled_from(SYMBOLS),
        stop=st.booleans(),
        side=st.sampled_from(Side),
        quantity=st.sampled_from(["1", "2", "3"]),
    )
    def add(self, user: str, symbol: str, stop: bool, side: Side, quantity: str) -> None:
        self.next_id += 1
        cid = f"c{self.next_id:04d}"
        if stop:
            order = _order_of(
                user,
                cid,
                symbol=symbol,
                order_type=OrderType.STOP_LIMIT,
                price="100",
                stop_price="100",
                side=side,
                quantity=quantity,
            )
        else:
            order = _order_of(user, cid, symbol=symbol, side=side, quantity=quantity)
        self.book.add(Tracked(order), self.now)

    @rule(data=st.data(), sent=st.booleans())
    def submit(self, data: st.DataObject, sent: bool) -> None:
        tracked = self._pick(
            data,
            lambda t: (
                t.order.status is S.PENDING_SUBMIT
                and not t.order.held
                and t.order.submitted_at_ms is None
            ),
        )
        if tracked is None:
            return
        assert tracked.order.price is not None
        tracked.order.begin_submit(tracked.order.price, TimeInForce.GTC, self.now)
        if sent:
            tracked.order.on_submit_sent()
        self._touch(tracked)

    @rule(data=st.data())
    def accept(self, data: st.DataObject) -> None:
        tracked = self._pick(data, lambda t: t.order.is_in_flight)
        if tracked is None:
            return
        order = tracked.order
        self.next_opex[order.symbol] += 1
        assert order.send_price is not None
        order.on_listed(
            listed(
                str(self.next_opex[order.symbol]),
                symbol=order.symbol,
                price=str(order.send_price),
                quantity=str(order.quantity),
                side=order.side,
            )
        )
        self._touch(tracked)

    @rule(data=st.data(), whole=st.booleans())
    def fill(self, data: st.DataObject, whole: bool) -> None:
        tracked = self._pick(
            data,
            lambda t: (
                t.order.opex_order_id is not None and t.order.filled_quantity < t.order.quantity
            ),
        )
        if tracked is None:
            return
        order = tracked.order
        assert order.opex_order_id is not None
        left = order.quantity - order.filled_quantity
        quantity = left if whole or left == 1 else D(1)
        self.trades += 1
        order.on_trade(
            trade(
                f"t{self.trades}",
                str(quantity),
                order_id=order.opex_order_id,
            )
        )
        self._touch(tracked)

    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        tracked = self._pick(data, lambda t: t.order.is_open)
        if tracked is None:
            return
        order = tracked.order
        decision = order.request_cancel()
        if isinstance(decision, SendCancel):
            order.on_listed(
                listed(
                    decision.opex_order_id,
                    symbol=order.symbol,
                    price=str(order.send_price),
                    quantity=str(order.quantity),
                    side=order.side,
                    status=ExchangeStatus.CANCELED,
                    executed=str(order.filled_quantity),
                )
            )
        self._touch(tracked)

    @rule(data=st.data())
    def give_up(self, data: st.DataObject) -> None:
        tracked = self._pick(data, lambda t: t.order.is_in_flight)
        if tracked is None:
            return
        tracked.order.fail(RejectReason.NOT_ACKNOWLEDGED, "not listed")
        self._touch(tracked)

    @rule(symbol=st.sampled_from(SYMBOLS), last=st.sampled_from([D(50), D(100), D(150)]))
    def ticker(self, symbol: str, last: Decimal) -> None:
        for stop in self.book.stops.on_last_price(symbol, last):
            tracked = self.book.get(stop.client_order_id)
            assert tracked is not None
            assert tracked.order.held
            assert tracked.order.is_open
            assert stop.client_order_id not in self.released  # released once
            self.released.add(stop.client_order_id)
            tracked.order.release()
            self._touch(tracked)

    @rule(ms=st.integers(min_value=0, max_value=2 * KEEP))
    def advance(self, ms: int) -> None:
        self.now += ms

    @precondition(lambda self: bool(self.book.orders))
    @rule()
    def prune(self) -> None:
        before = set(self.book.orders)
        expected_gone = {
            cid
            for cid in before
            if cid in self.finished_at and self.now - self.finished_at[cid] > KEEP
        }
        assert self.book.prune(self.now) == len(expected_gone)
        assert set(self.book.orders) == before - expected_gone

    # -- the invariant

    @invariant()
    def indexes_agree_with_orders(self) -> None:
        book = self.book
        orders = book.orders
        assert all(cid == t.client_order_id for cid, t in orders.items())
        by_opex = {
            (t.order.symbol, t.order.opex_order_id): cid
            for cid, t in orders.items()
            if t.order.opex_order_id is not None
        }
        assert book.by_opex == by_opex
        all_by_user: dict[str, set[str]] = {}
        open_by_user: dict[str, set[str]] = {}
        in_flight_by_user: dict[str, set[str]] = {}
        for cid, t in orders.items():
            all_by_user.setdefault(t.user_id, set()).add(cid)
            if t.order.is_open:
                open_by_user.setdefault(t.user_id, set()).add(cid)
            if t.order.is_in_flight:
                in_flight_by_user.setdefault(t.user_id, set()).add(cid)
        assert book.all_by_user == all_by_user
        assert book.open_by_user == open_by_user
        assert book.in_flight_by_user == in_flight_by_user
        assert book.users_with_open_orders() == sorted(open_by_user)
        for user in USERS:
            open_of = book.open_of(user)
            assert len(open_of) == len(open_by_user.get(user, ()))
            assert _cids(open_of) == open_by_user.get(user, set())
            assert _cids(book.in_flight_of(user)) == in_flight_by_user.get(user, set())
            assert _cids(book.of_user(user)) == all_by_user.get(user, set())
            for symbol in SYMBOLS:
                assert book.claimed_ids(user, symbol) == {
                    t.order.opex_order_id
                    for t in orders.values()
                    if t.user_id == user
                    and t.order.symbol == symbol
                    and t.order.opex_order_id is not None
                }
        assert _cids(book.in_flight()) == {cid for cid, t in orders.items() if t.order.is_in_flight}
        for (symbol, opex_id), cid in by_opex.items():
            assert book.by_opex_id(symbol, opex_id) is orders[cid]
        assert _held(book) == {
            (t.user_id, cid)
            for cid, t in orders.items()
            if t.order.is_open and t.order.held and t.order.stop_price is not None
        }
        for cid, t in orders.items():
            if t.order.is_open:
                assert t.finished_at_ms is None
            else:
                assert t.finished_at_ms == self.finished_at[cid]


BookMachine.TestCase.settings = settings(
    max_examples=75,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_book_indexes_agree_with_orders = BookMachine.TestCase
