"""Pre-trade checks for a PlaceOrder: each a small function ``(ctx) -> Refusal | None``,
run in the order of `PLACE_CHECKS`; the first refusal decides.

Every check fails closed: a missing instrument, price, account or balance refuses the
order. Checks only read; the engine changes state after the decision.

=====  ==========================  =================================================
 #     check                       reason code(s)
=====  ==========================  =================================================
 1     `check_message`             INVALID_MESSAGE (``ReasonCode``)
 2     `check_instrument_known`    INSTRUMENT_UNKNOWN
 3     `check_instrument_trading`  INSTRUMENT_NOT_TRADING
 4     `check_price_step`          PRICE_STEP
 5     `check_quantity_step`       QUANTITY_STEP
 6     `check_price_collar`        NO_REFERENCE_PRICE, PRICE_COLLAR
 7     `check_order_value`         ORDER_VALUE_OUT_OF_BOUNDS
 8     `check_order_type`          ORDER_TYPE_NOT_ALLOWED
 9     `check_user_provisioned`    USER_NOT_PROVISIONED
 10    `check_duplicate`           DUPLICATE_CLIENT_ORDER_ID
 11    `check_reduce_only`         INVALID_FIELD (``ReasonCode``; no RejectReason yet)
 12    `check_balance`             INSUFFICIENT_BALANCE
 13    `check_max_notional`        MAX_NOTIONAL
 14    `check_position_size`       MAX_POSITION_SIZE      (skipped for a reducing order)
 15    `check_daily_loss`          DAILY_LOSS_LIMIT       (skipped for a reducing order)
 16    `check_leverage`            MAX_LEVERAGE           (account part skipped likewise)
 17    `check_margin`              MARGIN_RATIO           (skipped for a reducing order)
 18    `check_order_rate`          ORDER_RATE
 19    `check_open_orders`         MAX_OPEN_ORDERS
 20    `check_trading_state`       TRADING_HALTED, TRADING_REDUCING
=====  ==========================  =================================================

This is `RejectReason`'s order but for the price collar, which comes before the first
check that values the order (a market order is valued at the reference price, so without
a fresh one it cannot be valued at all), and the reduce-only check. A *reducing* order
is one that only shrinks the user's position in the symbol even if every open order on
its side fills first (`Position.reduces`).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from services.risk_engine.config import RiskLimits
from shared.contracts import OrderType, PlaceOrder, ReasonCode, RejectReason, Side, TradingState

from .amounts import PNL, ZERO, is_multiple
from .metrics import book_exposure_and_equity, day_pnl, loss_breached
from .positions import Position
from .reservations import ReservationPlan, plan_reservation
from .state import Account, Instrument, RiskState, stricter

__all__ = [
    "EXCHANGE_ORDER_TYPES",
    "PLACE_CHECKS",
    "Check",
    "CheckContext",
    "Refusal",
    "build_context",
    "message_problem",
]

RefusalCode = RejectReason | ReasonCode


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why an order or a cancel is refused: a typed code and a human reason."""

    code: RefusalCode
    reason: str


EXCHANGE_ORDER_TYPES: dict[OrderType, str] = {
    OrderType.MARKET: "MARKET",
    OrderType.LIMIT: "LIMIT",
    OrderType.STOP: "MARKET",
    OrderType.STOP_LIMIT: "LIMIT",
}
"""The OPEX order type a pair must allow for each of ours: the gateway holds stop orders
and sends them as market or limit orders when they trigger (OPEX has no stops)."""


@dataclass(slots=True)
class CheckContext:
    """What the checks read, gathered once per decision."""

    user_id: str
    order: PlaceOrder
    now_ms: int
    limits: RiskLimits
    state: RiskState
    account: Account | None
    instrument: Instrument | None
    reference: Decimal | None
    """The symbol's reference price if fresh, else None."""
    price: Decimal | None
    """The price the order is valued at: its limit price, a stop's stop price, a market
    order's reference price."""
    notional: Decimal | None
    """quantity x price."""
    position: Position | None
    reduces: bool
    reservation: ReservationPlan | None
    book: tuple[Decimal, Decimal] | None = None
    """(exposure, equity), computed by the first check that needs them."""


def build_context(
    state: RiskState,
    user_id: str,
    account: Account | None,
    order: PlaceOrder,
    limits: RiskLimits,
    now_ms: int,
) -> CheckContext:
    """The context of one decision. A malformed command leaves the derived fields empty
    (`check_message` refuses it); `ArithmeticError` if amounts exceed exact arithmetic."""
    ctx = CheckContext(
        user_id, order, now_ms, limits, state, account, None, None, None, None, None, False, None
    )
    try:
        symbol = order.symbol
        instrument = ctx.instrument = state.instruments.get(symbol)
        reference = state.references.get(symbol)
        if reference is not None and now_ms - reference.at_ms <= limits.reference_price_max_age_ms:
            ctx.reference = reference.price
        order_type = order.type
        if order_type is OrderType.MARKET:
            price = ctx.reference
        elif order_type is OrderType.STOP:
            price = order.stop_price
        else:
            price = order.price
        if price is not None:
            ctx.price = price
            ctx.notional = order.quantity * price
        if account is not None:
            position = ctx.position = account.positions.get(symbol)
            if position is not None:
                ctx.reduces = position.reduces(order.side, order.quantity)
        if instrument is not None:
            ctx.reservation = plan_reservation(order, instrument, ctx.reference, limits)
    except (TypeError, AttributeError, KeyError):
        pass  # a malformed command: check_message refuses it
    return ctx


Check = Callable[[CheckContext], Refusal | None]


def _positive(value: object) -> bool:
    return type(value) is Decimal and value.is_finite() and value > 0


def check_message(ctx: CheckContext) -> Refusal | None:
    """The command is complete and consistent. The contract guarantees it for a decoded
    message; this guards commands built in code (``model_construct``), so every field is
    read as an unknown object."""
    order = ctx.order
    quantity: object = order.quantity
    order_type: object = order.type
    price: object = order.price
    stop_price: object = order.stop_price
    leverage: object = order.leverage
    if (
        type(quantity) is Decimal
        and quantity.is_finite()
        and quantity > 0
        and type(order_type) is OrderType
        and type(order.side) is Side
        and type(order.client_order_id) is str
        and order.client_order_id
        and type(order.symbol) is str
        and "_" in order.symbol
        and (_positive(price) or (price is None and not order_type.needs_price))
        and (_positive(stop_price) if order_type.needs_stop_price else stop_price is None)
        and type(leverage) is Decimal
        and leverage.is_finite()
        and leverage >= 1
    ):
        return None
    problem = message_problem(order)
    return Refusal(ReasonCode.INVALID_MESSAGE, problem or "the command is inconsistent")


def message_problem(order: PlaceOrder) -> str | None:
    """What is wrong with the command, in words; None if nothing is."""
    quantity: object = order.quantity
    order_type: object = order.type
    leverage: object = order.leverage
    if not (type(order.client_order_id) is str and order.client_order_id):
        return "client_order_id is missing"
    if not (type(order.symbol) is str and "_" in order.symbol):
        return "symbol is not BASE_QUOTE"
    if type(order.side) is not Side or type(order_type) is not OrderType:
        return "side or type is not known"
    if not _positive(quantity):
        return "quantity must be a positive decimal"
    if not (_positive(order.price) or (order.price is None and not order_type.needs_price)):
        return f"a {order_type} order needs a positive price"
    if order_type.needs_stop_price and not _positive(order.stop_price):
        return f"a {order_type} order needs a positive stop_price"
    if not order_type.needs_stop_price and order.stop_price is not None:
        return f"a {order_type} order takes no stop_price"
    if not (type(leverage) is Decimal and leverage.is_finite() and leverage >= 1):
        return "leverage must be at least 1"
    return None


def check_instrument_known(ctx: CheckContext) -> Refusal | None:
    if ctx.instrument is None:
        return Refusal(
            RejectReason.INSTRUMENT_UNKNOWN, f"{ctx.order.symbol} is not an instrument OPEX lists"
        )
    return None


def check_instrument_trading(ctx: CheckContext) -> Refusal | None:
    instrument = ctx.instrument
    if instrument is None or not instrument.trading:
        return Refusal(
            RejectReason.INSTRUMENT_NOT_TRADING, f"{ctx.order.symbol} is not available for trading"
        )
    return None


def check_price_step(ctx: CheckContext) -> Refusal | None:
    instrument = ctx.instrument
    if instrument is None:
        return Refusal(RejectReason.INSTRUMENT_UNKNOWN, "no instrument")
    step = instrument.price_step
    order = ctx.order
    price, stop_price = order.price, order.stop_price
    if price is not None and not is_multiple(price, step):
        return Refusal(RejectReason.PRICE_STEP, f"price {price:f} is not a multiple of {step:f}")
    if stop_price is not None and not is_multiple(stop_price, step):
        return Refusal(
            RejectReason.PRICE_STEP, f"stop_price {stop_price:f} is not a multiple of {step:f}"
        )
    return None


def check_quantity_step(ctx: CheckContext) -> Refusal | None:
    instrument = ctx.instrument
    if instrument is None:
        return Refusal(RejectReason.INSTRUMENT_UNKNOWN, "no instrument")
    step = instrument.quantity_step
    quantity = ctx.order.quantity
    if not is_multiple(quantity, step):
        return Refusal(
            RejectReason.QUANTITY_STEP, f"quantity {quantity:f} is not a multiple of {step:f}"
        )
    return None


def check_price_collar(ctx: CheckContext) -> Refusal | None:
    """A fresh reference price exists, and every price the order names is within the
    collar of it. Fails closed: no fresh price refuses any order, a market order first."""
    reference = ctx.reference
    limits = ctx.limits
    if reference is None:
        return Refusal(
            RejectReason.NO_REFERENCE_PRICE,
            f"no reference price for {ctx.order.symbol} newer than "
            f"{limits.reference_price_max_age_ms} ms",
        )
    order = ctx.order
    price, stop_price = order.price, order.stop_price
    if price is None and stop_price is None:
        return None
    band = reference * limits.price_collar_pct
    for name, named in (("price", price), ("stop_price", stop_price)):
        if named is not None and abs(named - reference) > band:
            return Refusal(
                RejectReason.PRICE_COLLAR,
                f"{name} {named:f} is more than {limits.price_collar_pct * 100:f}% from the "
                f"reference price {reference:f}",
            )
    return None


def check_order_value(ctx: CheckContext) -> Refusal | None:
    """OPEX's bounds on quantity x price."""
    instrument, notional = ctx.instrument, ctx.notional
    if instrument is None or notional is None:
        return Refusal(RejectReason.NO_REFERENCE_PRICE, "the order cannot be valued")
    if not instrument.min_order_value <= notional <= instrument.max_order_value:
        return Refusal(
            RejectReason.ORDER_VALUE_OUT_OF_BOUNDS,
            f"order value {notional:f} is outside [{instrument.min_order_value:f}, "
            f"{instrument.max_order_value:f}]",
        )
    return None


def check_order_type(ctx: CheckContext) -> Refusal | None:
    instrument = ctx.instrument
    if instrument is None:
        return Refusal(RejectReason.INSTRUMENT_UNKNOWN, "no instrument")
    allowed = instrument.order_types
    needed = EXCHANGE_ORDER_TYPES[ctx.order.type]
    if allowed and needed not in allowed:
        return Refusal(
            RejectReason.ORDER_TYPE_NOT_ALLOWED,
            f"{ctx.order.type} orders are not allowed on {instrument.symbol}",
        )
    return None


def check_user_provisioned(ctx: CheckContext) -> Refusal | None:
    account = ctx.account
    if account is None or not account.provisioned:
        return Refusal(
            RejectReason.USER_NOT_PROVISIONED, "the user has no OPEX account (not provisioned)"
        )
    return None


def check_duplicate(ctx: CheckContext) -> Refusal | None:
    account = ctx.account
    coid = ctx.order.client_order_id
    if account is not None and coid in account.seen_client_order_ids:
        return Refusal(
            RejectReason.DUPLICATE_CLIENT_ORDER_ID, f"client_order_id {coid} was already used"
        )
    return None


def check_reduce_only(ctx: CheckContext) -> Refusal | None:
    order = ctx.order
    if not order.reduce_only or ctx.reduces:
        return None
    position = ctx.position
    held = position.quantity if position is not None else ZERO
    pending = position.open_on(order.side) if position is not None else ZERO
    return Refusal(
        ReasonCode.INVALID_FIELD,
        f"a reduce-only {order.side} of {order.quantity:f} would not only reduce the "
        f"position {held:f} in {order.symbol} ({pending:f} already on that side)",
    )


def check_balance(ctx: CheckContext) -> Refusal | None:
    """Free balance after every open order's reservation covers this one's."""
    account, plan = ctx.account, ctx.reservation
    if account is None or account.totals is None:
        return Refusal(RejectReason.INSUFFICIENT_BALANCE, "no balances from OPEX yet")
    if plan is None:
        return Refusal(RejectReason.INSUFFICIENT_BALANCE, "the reservation cannot be priced")
    available = account.available(plan.asset)
    if available is None or plan.amount > available:
        return Refusal(
            RejectReason.INSUFFICIENT_BALANCE,
            f"needs {plan.amount:f} {plan.asset}, {available or ZERO:f} available",
        )
    return None


def check_max_notional(ctx: CheckContext) -> Refusal | None:
    notional, limit = ctx.notional, ctx.limits.max_order_notional
    if notional is None or notional > limit:
        return Refusal(
            RejectReason.MAX_NOTIONAL, f"order value {notional or ZERO:f} exceeds {limit:f}"
        )
    return None


def check_position_size(ctx: CheckContext) -> Refusal | None:
    """Worst-case position in the symbol, valued at the order's price, within the limit."""
    if ctx.reduces:
        return None
    order, position, price = ctx.order, ctx.position, ctx.price
    if price is None:
        return Refusal(RejectReason.NO_REFERENCE_PRICE, "the order cannot be valued")
    quantity = order.quantity
    if position is not None:
        if order.side is Side.BUY:
            worst = position.quantity + position.open_buy + quantity
        else:
            worst = position.quantity - position.open_sell - quantity
        quantity = abs(worst)
    size = quantity * price
    limit = ctx.limits.max_position_size
    if size > limit:
        return Refusal(
            RejectReason.MAX_POSITION_SIZE,
            f"position in {order.symbol} could reach {size:f}, above {limit:f}",
        )
    return None


def check_daily_loss(ctx: CheckContext) -> Refusal | None:
    if ctx.reduces:
        return None
    account, instrument = ctx.account, ctx.instrument
    if account is None or instrument is None:
        return Refusal(RejectReason.DAILY_LOSS_LIMIT, "no account")
    limit = ctx.limits.max_daily_loss
    pnl = day_pnl(ctx.state, account, instrument.quote)
    if loss_breached(pnl, limit):
        return Refusal(
            RejectReason.DAILY_LOSS_LIMIT,
            f"today's P&L {pnl:.2f} {instrument.quote} is at or beyond the loss limit {limit:f}",
        )
    return None


def _book(ctx: CheckContext) -> tuple[Decimal, Decimal] | None:
    book = ctx.book
    if book is None:
        account, instrument, price = ctx.account, ctx.instrument, ctx.price
        if account is None or instrument is None or price is None:
            return None
        order = ctx.order
        book = ctx.book = book_exposure_and_equity(
            ctx.state,
            account,
            instrument.quote,
            symbol=order.symbol,
            side=order.side,
            quantity=order.quantity,
            price=price,
        )
    return book


def check_leverage(ctx: CheckContext) -> Refusal | None:
    """The order asks for no more leverage than allowed, and the account's leverage after
    it stays within ``min(max_leverage, the instrument's cap, the order's leverage)``."""
    instrument = ctx.instrument
    if instrument is None:
        return Refusal(RejectReason.INSTRUMENT_UNKNOWN, "no instrument")
    cap = ctx.limits.max_leverage
    if instrument.max_leverage is not None and instrument.max_leverage < cap:
        cap = instrument.max_leverage
    requested = ctx.order.leverage
    if requested > cap:
        return Refusal(
            RejectReason.MAX_LEVERAGE, f"leverage {requested:f} exceeds the maximum {cap:f}"
        )
    if ctx.reduces:
        return None
    book = _book(ctx)
    if book is None:
        return Refusal(RejectReason.MAX_LEVERAGE, "leverage cannot be measured")
    exposure, equity = book
    if exposure and (equity <= 0 or exposure > (requested * equity)):
        shown = f"{PNL.divide(exposure, equity):.2f}" if equity > 0 else "unbounded"
        return Refusal(
            RejectReason.MAX_LEVERAGE,
            f"leverage after the order would be {shown}, above {requested:f}",
        )
    return None


def check_margin(ctx: CheckContext) -> Refusal | None:
    if ctx.reduces:
        return None
    book = _book(ctx)
    if book is None:
        return Refusal(RejectReason.MARGIN_RATIO, "margin cannot be measured")
    exposure, equity = book
    minimum = ctx.limits.min_margin_ratio
    if exposure and equity < (minimum * exposure):
        return Refusal(
            RejectReason.MARGIN_RATIO,
            f"margin ratio after the order would be {PNL.divide(equity, exposure):.4f}, "
            f"below {minimum:f}",
        )
    return None


def check_order_rate(ctx: CheckContext) -> Refusal | None:
    """At most ``max_orders_per_second`` approvals in the last second and
    ``max_orders_per_minute`` in the last minute."""
    account = ctx.account
    if account is None:
        return None
    times, now, limits = account.approvals_ms, ctx.now_ms, ctx.limits
    count = len(times)
    per_second = limits.max_orders_per_second
    if count >= per_second and count - bisect_right(times, now - 1_000) >= per_second:
        return Refusal(RejectReason.ORDER_RATE, f"more than {per_second} orders a second")
    per_minute = limits.max_orders_per_minute
    if count >= per_minute and count - bisect_right(times, now - 60_000) >= per_minute:
        return Refusal(RejectReason.ORDER_RATE, f"more than {per_minute} orders a minute")
    return None


def check_open_orders(ctx: CheckContext) -> Refusal | None:
    account = ctx.account
    limit = ctx.limits.max_open_orders
    if account is not None and len(account.open_orders) >= limit:
        return Refusal(RejectReason.MAX_OPEN_ORDERS, f"{limit} orders are already open")
    return None


def check_trading_state(ctx: CheckContext) -> Refusal | None:
    """HALTED refuses; REDUCING passes only a reducing order (globally or for the user,
    whichever is stricter)."""
    account = ctx.account
    state = ctx.state.global_trading.state
    if account is not None and account.trading.state is not TradingState.ACTIVE:
        state = stricter(state, account.trading.state)
    if state is TradingState.ACTIVE:
        return None
    if state is TradingState.HALTED:
        return Refusal(RejectReason.TRADING_HALTED, "trading is halted")
    if ctx.reduces:
        return None
    return Refusal(
        RejectReason.TRADING_REDUCING,
        "trading is reducing: only orders that shrink a position are allowed",
    )


PLACE_CHECKS: tuple[Check, ...] = (
    check_message,
    check_instrument_known,
    check_instrument_trading,
    check_price_step,
    check_quantity_step,
    check_price_collar,
    check_order_value,
    check_order_type,
    check_user_provisioned,
    check_duplicate,
    check_reduce_only,
    check_balance,
    check_max_notional,
    check_position_size,
    check_daily_loss,
    check_leverage,
    check_margin,
    check_order_rate,
    check_open_orders,
    check_trading_state,
)
"""The checks of a PlaceOrder, in order (see the table above)."""
