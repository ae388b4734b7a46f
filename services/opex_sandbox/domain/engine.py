"""The matching engine: one price-time priority book per pair, with OPEX's checks, locks,
fees and statuses. Synchronous: an order that OPEX would show as REQUESTED for a moment is
already NEW, PARTIALLY_FILLED, FILLED, CANCELED or REJECTED when `place` returns.

Checks run in OPEX's order (API -> matching gateway -> accountant -> engine):

1. unknown symbol: 7002; missing or non-positive price/quantity/timeInForce for the type: 1020
2. pair unavailable: 6038; engine type (LIMIT or MARKET) not allowed on the pair: 4002
3. price x quantity outside [minOrder, maxOrder]: 4003 (an absent price counts as 0, so a
   MARKET order without a price fails here, as in OPEX)
4. not enough free funds (buy: price x quantity of quote, no fee; sell: quantity of base), or
   no wallet: 4001
5. price or quantity not a multiple of its step: 1020 (OPEX fails there with an unmapped
   ArithmeticException; the code is the sandbox's choice)
6. funds are locked, then the engine: MARKET+GTC, a missing timeInForce and (by default) every
   FOK are REJECTED, funds released, no order id given (OPEX's engine only runs GTC and IOC).

Matching: trades execute at the maker's price; no self-trade prevention (OPEX has none).
MARKET orders match at any price; a MARKET buy, which locked quantity x its given price, stops
when that budget runs out (OPEX would overdraw; the sandbox keeps wallets non-negative).
IOC remainders are CANCELED (OPEX emits a cancel event). With `fok_supported=True` FOK is
all-or-nothing and an unfillable FOK is EXPIRED (Binance semantics), instead of REJECTED.
Fees: each side pays its rate on what it receives, in that asset, to `FEE_ACCOUNT`.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from enum import Enum
from typing import TypeVar

from .book import BookSide
from .clock import Clock
from .errors import (
    CancelOrderNotAllowed,
    InvalidOrderType,
    InvalidQuantity,
    InvalidRequestParam,
    OrderNotFound,
    PairIsNotAvailable,
    SubmitOrderForbiddenByAccountant,
    SymbolNotFound,
)
from .orders import ZERO, Order, OrderStatus, OrderType, Side, TimeInForce, Trade, UserTrade
from .pairs import Pair, PairRegistry
from .wallets import FEE_ACCOUNT, Balance, Wallets

DAY_MS = 86_400_000
E = TypeVar("E", bound=Enum)

_BUY = Side.BUY
_SELL = Side.SELL
_MARKET = OrderType.MARKET
_LIMIT = OrderType.LIMIT
_GTC = TimeInForce.GTC
_IOC = TimeInForce.IOC
_FOK = TimeInForce.FOK
_NEW = OrderStatus.NEW
_PARTIAL = OrderStatus.PARTIALLY_FILLED
_FILLED = OrderStatus.FILLED
_CANCELED = OrderStatus.CANCELED

# The API's per-type parameter checks (1020): which of price / quantity / stopPrice must be
# positive and whether timeInForce is required. MARKET is special-cased (quantity or
# quoteOrderQty).
_REQUIRED: dict[OrderType, tuple[bool, bool, bool, bool]] = {
    OrderType.LIMIT: (True, True, False, True),
    OrderType.STOP_LOSS: (False, True, True, False),
    OrderType.STOP_LOSS_LIMIT: (True, True, True, True),
    OrderType.TAKE_PROFIT: (False, True, True, False),
    OrderType.TAKE_PROFIT_LIMIT: (True, True, True, True),
    OrderType.LIMIT_MAKER: (True, True, False, False),
}


@dataclass(slots=True)
class PlaceResult:
    order: Order
    trades: list[Trade]

    @property
    def rejected(self) -> bool:
        return self.order.status is OrderStatus.REJECTED


@dataclass(slots=True, frozen=True)
class Depth:
    last_update_id: int
    bids: list[tuple[Decimal, Decimal]]  # best (highest) first
    asks: list[tuple[Decimal, Decimal]]  # best (lowest) first


@dataclass(slots=True, frozen=True)
class Ticker:
    symbol: str
    open_time: int
    close_time: int
    last_price: Decimal
    bid_price: Decimal
    bid_qty: Decimal
    ask_price: Decimal
    ask_qty: Decimal
    open_price: Decimal
    high_price: Decimal
    low_price: Decimal
    volume: Decimal
    quote_volume: Decimal
    weighted_avg_price: Decimal
    price_change: Decimal
    price_change_percent: Decimal
    first_id: int
    last_id: int
    count: int


class _Book:
    """Everything the engine keeps for one pair, with the pair's settings cached."""

    __slots__ = (
        "allows_limit",
        "allows_market",
        "asks",
        "bids",
        "last_order_id",
        "last_trade_id",
        "orders",
        "pair",
        "price_q",
        "qty_q",
        "symbol",
        "trade_times",
        "trades",
        "update_id",
        "user_open",
        "user_orders",
        "user_trades",
    )

    def __init__(self, pair: Pair) -> None:
        self.symbol = pair.symbol
        self.bids = BookSide(is_bid=True)
        self.asks = BookSide(is_bid=False)
        self.orders: dict[int, Order] = {}
        self.trades: list[Trade] = []
        self.trade_times: list[int] = []
        self.user_orders: dict[str, list[Order]] = {}
        self.user_open: dict[str, dict[int, Order]] = {}
        self.user_trades: dict[str, list[Trade]] = {}
        self.last_order_id = 0
        self.last_trade_id = 0
        self.update_id = 0
        self.configure(pair)

    def configure(self, pair: Pair) -> None:
        self.pair = pair
        self.price_q = _quantum(pair.price_step)
        self.qty_q = _quantum(pair.quantity_step)
        self.allows_limit = OrderType.LIMIT in pair.order_types
        self.allows_market = OrderType.MARKET in pair.order_types


def _coerce(enum: type[E], value: object, param: str) -> E:
    try:
        return enum(value)
    except ValueError:
        raise InvalidRequestParam(param) from None


def _quantum(step: Decimal) -> Decimal:
    exp = step.normalize().as_tuple().exponent
    return Decimal(1).scaleb(min(exp, 0)) if isinstance(exp, int) else Decimal(1)


class MatchingEngine:
    def __init__(
        self,
        pairs: PairRegistry,
        wallets: Wallets,
        clock: Clock,
        *,
        fok_supported: bool = False,
    ) -> None:
        self.pairs = pairs
        self.wallets = wallets
        self.clock = clock
        self.fok_supported = fok_supported
        self._books: dict[str, _Book] = {}
        self._pair_map = pairs.by_symbol
        self._accounts = wallets.accounts
        for pair in pairs:
            self._sync(pair)

    # -- pairs -----------------------------------------------------------------------------

    def _sync(self, pair: Pair) -> _Book:
        """The pair's book, created (with the currencies' wallets) or re-configured."""
        book = self._books.get(pair.symbol)
        if book is None:
            self.wallets.add_currency(pair.base)
            self.wallets.add_currency(pair.quote)
            book = self._books[pair.symbol] = _Book(pair)
        elif book.pair is not pair:
            book.configure(pair)
        return book

    def add_pair(self, symbol: str, price_step: Decimal, quantity_step: Decimal) -> Pair:
        """Add a pair the OPEX way (unavailable, min = max = 1) and its currencies' wallets.
        (Pairs added to the registry directly get their book and wallets on first use.)"""
        pair = self.pairs.add(symbol, price_step, quantity_step)
        self._sync(pair)
        return pair

    def _book(self, symbol: str) -> _Book:
        book = self._books.get(symbol)
        if book is None:
            pair = self.pairs.find(symbol)
            if pair is None:
                raise SymbolNotFound(f"No symbol found: {symbol}")
            book = self._sync(pair)
        return book

    # -- placing ---------------------------------------------------------------------------

    def check(
        self,
        user: str,
        symbol: str,
        side: Side,
        order_type: OrderType,
        time_in_force: TimeInForce | None,
        quantity: Decimal | None,
        price: Decimal | None = None,
        *,
        quote_order_qty: Decimal | None = None,
        stop_price: Decimal | None = None,
    ) -> None:
        """Run every check `place` runs before it touches anything, in the same order, and
        raise the same `OpexError`; change nothing. What OPEX answers synchronously (its API,
        matching gateway and accountant checks) before the order travels on asynchronously.
        Engine-level refusals (MARKET+GTC, FOK) are not checks: they are REJECTED orders."""
        self._prepare(
            user, symbol, side, order_type, time_in_force, quantity, price,
            quote_order_qty, stop_price,
        )  # fmt: skip

    def _prepare(
        self,
        user: str,
        symbol: str,
        side: Side,
        order_type: OrderType,
        time_in_force: TimeInForce | None,
        quantity: Decimal | None,
        price: Decimal | None,
        quote_order_qty: Decimal | None,
        stop_price: Decimal | None,
    ) -> tuple[
        Pair, _Book, Side, OrderType, TimeInForce | None, Decimal, Decimal, str, Decimal, Balance
    ]:
        """The synchronous checks; returns what `place` needs to go on."""
        pair = self._pair_map.get(symbol)
        if pair is None:
            raise SymbolNotFound(f"No symbol found: {symbol}")
        book = self._books.get(symbol)
        if book is None or book.pair is not pair:
            book = self._sync(pair)
        if type(side) is not Side:  # plain strings are welcome, in the enums' spelling
            side = _coerce(Side, side, "side")
        if type(order_type) is not OrderType:
            order_type = _coerce(OrderType, order_type, "type")
        if time_in_force is not None and type(time_in_force) is not TimeInForce:
            time_in_force = _coerce(TimeInForce, time_in_force, "timeInForce")
        if (
            order_type is _LIMIT
            and price is not None
            and price.is_finite()
            and price > ZERO
            and quantity is not None
            and quantity.is_finite()
            and quantity > ZERO
            and time_in_force is not None
        ):
            qty, px, etype = quantity, price, _LIMIT  # the common case, already valid
        else:
            self._check_params(
                order_type, time_in_force, quantity, price, quote_order_qty, stop_price
            )
            qty = ZERO if quantity is None else quantity
            px = ZERO if price is None else price
            if px < 0:
                raise InvalidRequestParam("price")
            etype = _MARKET if order_type is _MARKET else _LIMIT
        if not pair.is_available:
            raise PairIsNotAvailable()
        if not (book.allows_market if etype is _MARKET else book.allows_limit):
            raise InvalidOrderType()
        value = qty * px
        if value > pair.max_order or value < pair.min_order or qty <= ZERO:
            raise InvalidQuantity()
        if side is _BUY:
            asset, need = pair.quote, value
        else:
            asset, need = pair.base, qty
        bal = self._accounts.get((user, asset))
        if bal is None or bal.free < need:
            raise SubmitOrderForbiddenByAccountant(f"Insufficient balance: {need} {asset} needed")
        if px % pair.price_step:
            raise InvalidRequestParam("price", f"price {px} is not a multiple of {pair.price_step}")
        if qty % pair.quantity_step:
            raise InvalidRequestParam(
                "quantity", f"quantity {qty} is not a multiple of {pair.quantity_step}"
            )
        return pair, book, side, etype, time_in_force, qty, px, asset, need, bal

    def place(
        self,
        user: str,
        symbol: str,
        side: Side,
        order_type: OrderType,
        time_in_force: TimeInForce | None,
        quantity: Decimal | None,
        price: Decimal | None = None,
        *,
        quote_order_qty: Decimal | None = None,
        stop_price: Decimal | None = None,
    ) -> PlaceResult:
        """Place an order. Raises `OpexError` for everything OPEX refuses synchronously (see
        `check`); engine-level refusals come back as a REJECTED order (order_id 0, never
        listed)."""
        pair, book, side, etype, time_in_force, qty, px, asset, need, bal = self._prepare(
            user, symbol, side, order_type, time_in_force, quantity, price,
            quote_order_qty, stop_price,
        )  # fmt: skip
        px = px.quantize(book.price_q)
        qty = qty.quantize(book.qty_q)

        bal.free -= need
        bal.locked += need
        now = self.clock()
        order = Order(symbol, 0, user, side, etype, time_in_force, px, qty, now, now, asset, need)

        reason: str | None = None
        if time_in_force is _GTC:
            if etype is _MARKET:
                reason = "ORDER_TYPE_NOT_MATCHED_MATCHC"
        elif time_in_force is None or (time_in_force is _FOK and not self.fok_supported):
            reason = "OPERATION_NOT_MATCHED_MATCHC"
        if reason is not None:
            order.status = OrderStatus.REJECTED
            order.reject_reason = reason
            self._release(order, bal)
            return PlaceResult(order, [])

        book.last_order_id += 1
        order.order_id = book.last_order_id
        book.orders[order.order_id] = order
        user_orders = book.user_orders.get(user)
        if user_orders is None:
            book.user_orders[user] = [order]
        else:
            user_orders.append(order)

        if time_in_force is _FOK and not self._fillable(book, pair, order):
            order.status = OrderStatus.EXPIRED
            self._release(order, bal)
            return PlaceResult(order, [])

        best = (book.asks if side is _BUY else book.bids).best()
        if best is not None and (
            etype is _MARKET or (best.price <= px if side is _BUY else best.price >= px)
        ):
            trades = self._match(book, pair, order, now)
        else:
            trades = []
        if order.executed_qty == qty:
            order.status = _FILLED
            if order.locked:
                self._release(order, bal)
        elif time_in_force is _GTC:
            order.status = _PARTIAL if trades else _NEW
            (book.bids if side is _BUY else book.asks).add(order)
            book.update_id += 1
            open_orders = book.user_open.get(user)
            if open_orders is None:
                book.user_open[user] = {order.order_id: order}
            else:
                open_orders[order.order_id] = order
        else:
            order.status = _CANCELED
            self._release(order, bal)
        return PlaceResult(order, trades)

    @staticmethod
    def _check_params(
        order_type: OrderType,
        tif: TimeInForce | None,
        quantity: Decimal | None,
        price: Decimal | None,
        quote_order_qty: Decimal | None,
        stop_price: Decimal | None,
    ) -> None:
        for name, value in (
            ("price", price),
            ("quantity", quantity),
            ("quoteOrderQty", quote_order_qty),
            ("stopPrice", stop_price),
        ):
            if value is not None and not value.is_finite():
                raise InvalidRequestParam(name)
        if order_type is _MARKET:
            if quantity is None:
                if quote_order_qty is None or quote_order_qty <= 0:
                    raise InvalidRequestParam("quoteOrderQty")
            elif quantity <= 0:
                raise InvalidRequestParam("quantity")
            return
        need_price, need_qty, need_stop, need_tif = _REQUIRED[order_type]
        if need_price and (price is None or price <= 0):
            raise InvalidRequestParam("price")
        if need_qty and (quantity is None or quantity <= 0):
            raise InvalidRequestParam("quantity")
        if need_stop and (stop_price is None or stop_price <= 0):
            raise InvalidRequestParam("stopPrice")
        if need_tif and tif is None:
            raise InvalidRequestParam("timeInForce")

    def _release(self, order: Order, bal: Balance | None = None) -> None:
        """Give back whatever the order still holds."""
        amount = order.locked
        if amount:
            if bal is None:
                bal = self.wallets.accounts[(order.user, order.locked_asset)]
            bal.locked -= amount
            bal.free += amount
            order.locked = ZERO

    def _fillable(self, book: _Book, pair: Pair, order: Order) -> bool:
        """Could `order` fill completely right now (FOK pre-check)?"""
        buy = order.side is _BUY
        market = order.type is _MARKET
        need = order.orig_qty
        budget = order.locked
        for lvl in (book.asks if buy else book.bids).sorted_levels():
            p = lvl.price
            if not market and (p > order.price if buy else p < order.price):
                return False
            x = need if need < lvl.qty else lvl.qty
            if buy:
                cost = x * p
                if cost > budget:
                    return False
                budget -= cost
            need -= x
            if not need:
                return True
        return False

    def _match(self, book: _Book, pair: Pair, taker: Order, now: int) -> list[Trade]:
        buy = taker.side is _BUY
        opposite = book.asks if buy else book.bids
        market = taker.type is _MARKET
        limit = taker.price
        remaining = taker.orig_qty
        trades: list[Trade] = []
        accounts = self.wallets.accounts
        base, quote = pair.base, pair.quote
        maker_rate, taker_rate = pair.maker_fee, pair.taker_fee
        fee_base = accounts[(FEE_ACCOUNT, base)]
        fee_quote = accounts[(FEE_ACCOUNT, quote)]
        t_base = accounts[(taker.user, base)]
        t_quote = accounts[(taker.user, quote)]
        user_open = book.user_open
        user_trades = book.user_trades
        symbol = book.symbol
        out_of_budget = False

        while remaining:
            lvl = opposite.best()
            if lvl is None:
                break
            p = lvl.price
            if not market and (p > limit if buy else p < limit):
                break
            queue = lvl.orders
            while remaining and queue:
                maker = queue[0]
                status = maker.status
                if status is not _NEW and status is not _PARTIAL:
                    queue.popleft()
                    continue
                m_rem = maker.orig_qty - maker.executed_qty
                x = remaining if remaining < m_rem else m_rem
                quote_amt = x * p
                if buy and quote_amt > taker.locked:
                    # only a MARKET buy walking above its given price gets here
                    x = self._affordable(taker.locked, p, pair.quantity_step)
                    if x <= 0:
                        out_of_budget = True
                        break
                    quote_amt = x * p
                m_base = accounts[(maker.user, base)]
                m_quote = accounts[(maker.user, quote)]
                if buy:
                    t_quote.locked -= quote_amt
                    taker.locked -= quote_amt
                    m_base.locked -= x
                    maker.locked -= x
                    t_fee = x * taker_rate
                    t_base.free += x - t_fee
                    fee_base.free += t_fee
                    m_fee = quote_amt * maker_rate
                    m_quote.free += quote_amt - m_fee
                    fee_quote.free += m_fee
                else:
                    t_base.locked -= x
                    taker.locked -= x
                    m_quote.locked -= quote_amt
                    maker.locked -= quote_amt
                    t_fee = quote_amt * taker_rate
                    t_quote.free += quote_amt - t_fee
                    fee_quote.free += t_fee
                    m_fee = x * maker_rate
                    m_base.free += x - m_fee
                    fee_base.free += m_fee
                taker.executed_qty += x
                taker.cummulative_quote_qty += quote_amt
                maker.executed_qty += x
                maker.cummulative_quote_qty += quote_amt
                maker.update_time = now
                lvl.qty -= x
                remaining -= x
                if x == m_rem:
                    maker.status = _FILLED
                    queue.popleft()
                    lvl.count -= 1
                    if maker.locked:
                        self._release(maker, m_quote if maker.side is _BUY else m_base)
                    del user_open[maker.user][maker.order_id]
                else:
                    maker.status = _PARTIAL
                book.last_trade_id += 1
                if buy:
                    trade = Trade(
                        symbol, book.last_trade_id, p, x, quote_amt, now,
                        taker.user, taker.order_id, t_fee,
                        maker.user, maker.order_id, m_fee,
                        base, quote, False,
                    )  # fmt: skip
                else:
                    trade = Trade(
                        symbol, book.last_trade_id, p, x, quote_amt, now,
                        maker.user, maker.order_id, m_fee,
                        taker.user, taker.order_id, t_fee,
                        base, quote, True,
                    )  # fmt: skip
                trades.append(trade)
                lst = user_trades.get(taker.user)
                if lst is None:
                    user_trades[taker.user] = [trade]
                else:
                    lst.append(trade)
                if maker.user != taker.user:
                    lst = user_trades.get(maker.user)
                    if lst is None:
                        user_trades[maker.user] = [trade]
                    else:
                        lst.append(trade)
            if lvl.count == 0:
                opposite.drop(lvl)
            if out_of_budget:
                break

        if trades:
            taker.update_time = now
            book.trades.extend(trades)
            book.trade_times.extend([now] * len(trades))
            book.update_id += 1
        return trades

    @staticmethod
    def _affordable(budget: Decimal, price: Decimal, step: Decimal) -> Decimal:
        x = (budget / price).quantize(step, rounding=ROUND_DOWN)
        x -= x % step
        while x > 0 and x * price > budget:
            x -= step
        return x

    # -- canceling -------------------------------------------------------------------------

    def cancel(self, user: str, symbol: str, order_id: int) -> Order:
        """Cancel a working order. An already CANCELED one is echoed; FILLED, REJECTED and
        EXPIRED give 7006; an unknown id, or another user's, 7001."""
        book = self._book(symbol)
        order = book.orders.get(order_id)
        if order is None or order.user != user:
            raise OrderNotFound(f"No order {order_id} on {symbol}")
        status = order.status
        if status is _CANCELED:
            return order
        if not status.is_working:
            raise CancelOrderNotAllowed()
        self._cancel(book, order)
        return order

    def _cancel(self, book: _Book, order: Order) -> None:
        (book.bids if order.side is _BUY else book.asks).remove(order)
        order.status = _CANCELED
        order.update_time = self.clock()
        self._release(order)
        del book.user_open[order.user][order.order_id]
        book.update_id += 1

    def cancel_open_orders(self, user: str, symbol: str) -> list[Order]:
        book = self._book(symbol)
        open_orders = list(book.user_open.get(user, {}).values())
        for order in open_orders:
            self._cancel(book, order)
        return open_orders

    # -- queries ---------------------------------------------------------------------------

    def get_order(self, user: str, symbol: str, order_id: int) -> Order:
        order = self._book(symbol).orders.get(order_id)
        if order is None or order.user != user:
            raise OrderNotFound(f"No order {order_id} on {symbol}")
        return order

    def open_orders(self, user: str, symbol: str | None = None) -> list[Order]:
        """Working orders, oldest first; across all pairs when `symbol` is None."""
        if symbol is not None:
            return list(self._book(symbol).user_open.get(user, {}).values())
        return sorted(
            (o for b in self._books.values() for o in b.user_open.get(user, {}).values()),
            key=lambda o: (o.time, o.symbol, o.order_id),
        )

    def all_orders(
        self,
        user: str,
        symbol: str,
        start_time: int | None = None,
        end_time: int | None = None,
        limit: int = 500,
    ) -> list[Order]:
        """As OPEX's market query: update time in [start, end), newest update first, `limit`."""
        selected = [
            o
            for o in self._book(symbol).user_orders.get(user, [])
            if (start_time is None or o.update_time >= start_time)
            and (end_time is None or o.update_time < end_time)
        ]
        selected.sort(key=lambda o: (o.update_time, o.order_id), reverse=True)
        return selected[: max(limit, 0)]

    def user_trades(
        self,
        user: str,
        symbol: str,
        from_id: int | None = None,
        start_time: int | None = None,
        end_time: int | None = None,
        limit: int = 500,
    ) -> list[UserTrade]:
        """As OPEX's market query: trade id > fromId, time in [start, end), newest first."""
        out: list[UserTrade] = []
        for t in reversed(self._book(symbol).user_trades.get(user, [])):
            if len(out) >= limit:
                break
            if from_id is not None and t.trade_id <= from_id:
                continue
            if start_time is not None and t.time < start_time:
                continue
            if end_time is not None and t.time >= end_time:
                continue
            out.append(t.for_user(user))
        return out

    def depth(self, symbol: str, limit: int = 100) -> Depth:
        book = self._book(symbol)
        return Depth(book.update_id, book.bids.depth(limit), book.asks.depth(limit))

    def best_bid(self, symbol: str) -> tuple[Decimal, Decimal] | None:
        lvl = self._book(symbol).bids.best()
        return None if lvl is None else (lvl.price, lvl.qty)

    def best_ask(self, symbol: str) -> tuple[Decimal, Decimal] | None:
        lvl = self._book(symbol).asks.best()
        return None if lvl is None else (lvl.price, lvl.qty)

    def last_price(self, symbol: str) -> Decimal | None:
        trades = self._book(symbol).trades
        return trades[-1].price if trades else None

    def recent_trades(self, symbol: str, limit: int = 500) -> list[Trade]:
        """The last `limit` trades, oldest first (Binance's order; OPEX's is unverified)."""
        trades = self._book(symbol).trades
        return trades[-limit:] if limit > 0 else []

    def trade(self, symbol: str, trade_id: int) -> Trade | None:
        """One trade of the pair by id (ids run 1, 2, ... per pair), or None."""
        trades = self._book(symbol).trades
        if 1 <= trade_id <= len(trades):
            trade = trades[trade_id - 1]
            if trade.trade_id == trade_id:
                return trade
        return None

    def ticker(self, symbol: str, window_ms: int = DAY_MS) -> Ticker:
        """Rolling statistics over the trades of the last `window_ms`. With no trade in the
        window, the price fields are 0 but lastPrice, which is the last trade ever (or 0)."""
        book = self._book(symbol)
        now = self.clock()
        start = now - window_ms
        i = bisect_left(book.trade_times, start)
        window = book.trades[i:]
        bid = book.bids.best()
        ask = book.asks.best()
        last = book.trades[-1].price if book.trades else ZERO
        if window:
            open_ = window[0].price
            high = max(t.price for t in window)
            low = min(t.price for t in window)
            volume = sum((t.qty for t in window), ZERO)
            quote_volume = sum((t.quote_qty for t in window), ZERO)
            wavg = quote_volume / volume
            change = last - open_
            pct = (change * 100 / open_).quantize(Decimal("0.01"))
            first_id, last_id = window[0].trade_id, window[-1].trade_id
        else:
            open_ = high = low = volume = quote_volume = wavg = change = pct = ZERO
            first_id = last_id = -1
        return Ticker(
            symbol=symbol,
            open_time=start,
            close_time=now,
            last_price=last,
            bid_price=bid.price if bid else ZERO,
            bid_qty=bid.qty if bid else ZERO,
            ask_price=ask.price if ask else ZERO,
            ask_qty=ask.qty if ask else ZERO,
            open_price=open_,
            high_price=high,
            low_price=low,
            volume=volume,
            quote_volume=quote_volume,
            weighted_avg_price=wavg,
            price_change=change,
            price_change_percent=pct,
            first_id=first_id,
            last_id=last_id,
            count=len(window),
        )

    # -- self-check ------------------------------------------------------------------------

    def resting_orders(self, symbol: str) -> tuple[list[Order], list[Order]]:
        """(bids, asks) working orders in priority order."""
        book = self._book(symbol)
        return book.bids.orders_in_priority(), book.asks.orders_in_priority()

    def audit(self) -> list[str]:
        """Check the engine's invariants; returns human-readable violations (empty if sound)."""
        problems: list[str] = []
        wallets = self.wallets
        for asset in wallets.currencies:
            if wallets.total(asset) != wallets.deposits(asset):
                problems.append(
                    f"{asset}: total {wallets.total(asset)} != deposits {wallets.deposits(asset)}"
                )
        held: dict[tuple[str, str], Decimal] = {}
        for symbol, book in self._books.items():
            bid, ask = book.bids.best(), book.asks.best()
            if bid is not None and ask is not None and bid.price >= ask.price:
                problems.append(f"{symbol}: crossed book {bid.price} >= {ask.price}")
            resting = {id(o) for side in (book.bids, book.asks) for o in side.orders_in_priority()}
            for side in (book.bids, book.asks):
                for lvl in side.levels.values():
                    working = list(lvl.working())
                    if lvl.count != len(working) or lvl.qty != sum(
                        (o.remaining_qty for o in working), ZERO
                    ):
                        problems.append(f"{symbol}: level {lvl.price} totals disagree")
            for order in book.orders.values():
                if order.executed_qty > order.orig_qty or order.executed_qty < 0:
                    problems.append(f"{symbol}#{order.order_id}: executed out of range")
                if order.is_working:
                    if id(order) not in resting:
                        problems.append(f"{symbol}#{order.order_id}: working but not in book")
                    need = (
                        order.remaining_qty * order.price
                        if order.side is _BUY
                        else order.remaining_qty
                    )
                    if order.locked < need:
                        problems.append(f"{symbol}#{order.order_id}: holds less than it needs")
                    k = (order.user, order.locked_asset)
                    held[k] = held.get(k, ZERO) + order.locked
                elif order.locked:
                    problems.append(f"{symbol}#{order.order_id}: terminal order holds funds")
        for (user, asset), bal in wallets.accounts.items():
            if bal.free < 0 or bal.locked < 0:
                problems.append(f"{user}/{asset}: negative balance")
            if bal.locked != held.get((user, asset), ZERO):
                problems.append(f"{user}/{asset}: locked {bal.locked} != open orders' holds")
        return problems
