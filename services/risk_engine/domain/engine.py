"""The risk engine: decides commands and keeps its state from the events it reads.

Reads top to bottom: commands (`decide_place`, `decide_close_position`,
`decide_cancel`), control (`set_trading_state`; limits live in `Limits`), the one deny
path and the approval, then the event handlers (`on_instrument`, `on_ticker`,
`on_user_provisioned`, `on_balances`, `on_order_event`, `on_timer`) and the replay that
rebuilds the state after a restart (`replay`).

Pure: no broker, no database, no asyncio; time comes from the injected clock (epoch ms).
Every entry point that counts runs in the exact decimal context (`amounts.exact`).
Every method returns what is to be published (`decisions`), and the service publishes it.
"""

from __future__ import annotations

import hashlib
import re
from bisect import bisect_right
from datetime import UTC, datetime, timedelta
from decimal import Decimal, localcontext
from uuid import UUID

from services.risk_engine.config import RiskLimits
from shared.contracts import (
    Balance,
    BalanceSource,
    BalancesUpdated,
    CancelOrder,
    ClosePosition,
    Fill,
    InstrumentUpdated,
    Message,
    OrderAccepted,
    OrderApproved,
    OrderEvent,
    OrderFilled,
    OrderRejected,
    OrderStatus,
    OrderType,
    PlaceOrder,
    PositionUpdated,
    ReasonCode,
    RejectReason,
    RejectSource,
    Side,
    TickerUpdated,
    TimeInForce,
    TradingScope,
    TradingState,
    TradingStateChanged,
    UserProvisioned,
)

from .amounts import EXACT, ONE, PNL, ZERO, exact, to_wire, to_wire_ceiling
from .balances import BalanceDrift, apply_fee, apply_snapshot, apply_trade
from .checks import PLACE_CHECKS, CheckContext, Refusal, build_context, message_problem
from .clock import DAY_MS, Clock, system_clock
from .decisions import (
    Approved,
    CancelDecision,
    CancelPassed,
    CancelRefused,
    Outgoing,
    PlaceDecision,
    Rejected,
)
from .limits import Limits
from .metrics import day_pnl, loss_breached
from .positions import Position
from .reservations import consume, release, reserve
from .state import (
    Account,
    Instrument,
    OpenOrder,
    ReferencePrice,
    RiskState,
    TradingStatus,
    reference_from_ticker,
)

__all__ = ["ENGINE_ACTOR", "RiskEngine", "epoch_ms", "position_id"]

ENGINE_ACTOR = "risk_engine"
"""``changed_by`` of the trading-state changes the engine makes by itself."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_POSITION_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}", re.ASCII)


def epoch_ms(moment: datetime) -> int:
    """An aware datetime as epoch milliseconds."""
    return (moment - _EPOCH) // _MS


def position_id(user_id: str, symbol: str) -> str:
    """A stable id for the user's position in ``symbol``: ``BTC_USDT:42``, or a hash of
    the user id where it holds characters an id may not."""
    candidate = f"{symbol}:{user_id}"
    if _POSITION_ID.fullmatch(candidate):
        return candidate
    return f"{symbol}:{hashlib.sha256(user_id.encode()).hexdigest()[:24]}"


def _named_order(account: Account, command: CancelOrder) -> str | None:
    """The client order id a cancel names; None if its two ids disagree or OPEX's id is
    unknown."""
    client_order_id = command.client_order_id
    if command.order_id is not None:
        named = account.order_ids.get(command.order_id)
        if client_order_id is None:
            return named
        if named is not None and named != client_order_id:
            return None
    return client_order_id


class RiskEngine:
    """Pre-trade risk, reservations, positions and trading states of every user."""

    def __init__(
        self,
        state: RiskState | None = None,
        limits: Limits | None = None,
        clock: Clock = system_clock,
    ) -> None:
        self.state = state if state is not None else RiskState()
        self.limits = limits if limits is not None else Limits()
        self._clock = clock

    # ------------------------------------------------------------------------ commands

    def decide_place(self, user_id: str, command: PlaceOrder) -> PlaceDecision:
        """Approve ``command`` (and reserve its funds) or reject it with the first
        failing check's reason (`checks.PLACE_CHECKS`)."""
        with localcontext(EXACT):  # inline `exact`: this is the hot path
            return self._decide_place(user_id, command)

    def _decide_place(self, user_id: str, command: PlaceOrder) -> PlaceDecision:
        now = self._clock()
        state = self.state
        account = state.accounts.get(user_id)
        events: list[Outgoing] = []
        if account is not None and account.day != now // DAY_MS:
            self._roll_day(account, now, events)
        limits = self.limits.for_user(user_id)
        try:
            ctx = build_context(state, user_id, account, command, limits, now)
            for check in PLACE_CHECKS:
                refusal = check(ctx)
                if refusal is not None:
                    return self._deny(user_id, account, command, refusal, events)
        except ArithmeticError:  # NaN in a command, or amounts beyond exact arithmetic
            problem = message_problem(command)
            if problem is not None:
                refusal = Refusal(ReasonCode.INVALID_MESSAGE, problem)
            else:
                refusal = Refusal(ReasonCode.AMOUNT_TOO_PRECISE, "amounts too precise to check")
            return self._deny(user_id, account, command, refusal, events)
        return self._approve(ctx, events)

    @exact
    def decide_close_position(
        self, user_id: str, command: ClosePosition, *, command_id: UUID
    ) -> PlaceDecision:
        """Close all (or ``quantity``) of the user's position in the symbol with a
        reduce-only market order, decided like any PlaceOrder. Its client order id is the
        command's, else ``close-<command id>``. With no quantity given and nothing left to
        close (flat, or open orders already closing all of it) the order is refused at
        once (INVALID_FIELD; it names one quantity step, since a rejection needs a
        quantity); a quantity beyond what is left is refused by the reduce-only check."""
        account = self.state.accounts.get(user_id)
        position = account.positions.get(command.symbol) if account is not None else None
        held = position.quantity if position is not None else ZERO
        side = Side.SELL if held > 0 else Side.BUY
        pending = position.open_on(side) if position is not None else ZERO
        quantity = command.quantity
        if quantity is None:
            quantity = abs(held) - pending
        nothing = quantity <= 0
        if nothing:
            instrument = self.state.instruments.get(command.symbol)
            quantity = instrument.quantity_step if instrument is not None else ONE
        order = PlaceOrder(
            client_order_id=command.client_order_id or f"close-{command_id.hex}",
            symbol=command.symbol,
            side=side,
            type=OrderType.MARKET,
            quantity=quantity,
            time_in_force=TimeInForce.IOC,
            reduce_only=True,
        )
        if nothing:
            refusal = Refusal(
                ReasonCode.INVALID_FIELD, f"no position in {command.symbol} left to close"
            )
            return self._deny(user_id, account, order, refusal, [])
        return self.decide_place(user_id, order)

    def decide_cancel(self, user_id: str, command: CancelOrder) -> CancelDecision:
        """Pass a cancel on if it names an open order of the user's in that symbol
        (ORDER_NOT_OPEN if the order is closed, ORDER_NOT_FOUND if there is none).
        Cancels pass in every trading state."""
        account = self.state.accounts.get(user_id)
        client_order_id = _named_order(account, command) if account is not None else None
        if account is not None and client_order_id is not None:
            order = account.open_orders.get(client_order_id)
            if order is not None and order.symbol == command.symbol:
                return CancelPassed(user_id, command, client_order_id)
            if order is None and client_order_id in account.seen_client_order_ids:
                return CancelRefused(
                    user_id, command, RejectReason.ORDER_NOT_OPEN, "the order is no longer open"
                )
        return CancelRefused(
            user_id,
            command,
            RejectReason.ORDER_NOT_FOUND,
            f"no order of this user in {command.symbol} by that id",
        )

    # ------------------------------------------------------------------------- control

    def set_trading_state(
        self,
        state: TradingState,
        *,
        changed_by: str,
        reason: str,
        user_id: str | None = None,
    ) -> Outgoing | None:
        """Set trading globally (``user_id`` None) or for one user; the
        TradingStateChanged to publish, or None if the state was already ``state``."""
        if user_id is None:
            status = self.state.global_trading
        else:
            status = self.state.account(user_id).trading
        return self._change(status, user_id, state, changed_by, reason, automatic=False)

    # -------------------------------------------------------------- decision egress

    def _deny(
        self,
        user_id: str,
        account: Account | None,
        order: PlaceOrder,
        refusal: Refusal,
        events: list[Outgoing],
    ) -> Rejected:
        """The one way an order is refused: its client order id is used up, and a
        daily-loss refusal moves the user to REDUCING if it has not happened yet."""
        if account is not None and isinstance(order.client_order_id, str):
            account.seen_client_order_ids.add(order.client_order_id)
            if refusal.code is RejectReason.DAILY_LOSS_LIMIT:
                instrument = self.state.instruments.get(order.symbol)
                if instrument is not None:
                    self._guard_daily_loss(account, instrument.quote, events)
        return Rejected(user_id, order, refusal.code, refusal.reason, tuple(events))

    def _approve(self, ctx: CheckContext, events: list[Outgoing]) -> Approved:
        account, plan, instrument = ctx.account, ctx.reservation, ctx.instrument
        assert account is not None
        assert plan is not None
        assert instrument is not None
        command, now = ctx.order, ctx.now_ms
        order = OpenOrder(
            command.client_order_id,
            command.symbol,
            command.side,
            command.type,
            command.quantity,
            command.price,
            plan.asset,
            plan.unit,
            plan.amount,
            now,
            command.reduce_only,
        )
        account.open_orders[order.client_order_id] = order
        account.seen_client_order_ids.add(order.client_order_id)
        reserve(account, order)
        position = ctx.position
        if position is None:
            position = account.positions[command.symbol] = Position(
                command.symbol, instrument.base, instrument.quote
            )
        position.add_open(command.side, command.quantity)
        times = account.approvals_ms
        times.append(now)
        if times[0] <= now - 60_000:
            del times[: bisect_right(times, now - 60_000)]
        return Approved(ctx.user_id, command, plan.asset, plan.amount, tuple(events))

    # ------------------------------------------------------------------ event handlers

    def on_instrument(self, event: InstrumentUpdated) -> None:
        """OPEX's rules for a pair (new or changed)."""
        instrument = Instrument.from_event(event)
        self.state.instruments[instrument.symbol] = instrument
        self.state.pairs[(instrument.base, instrument.quote)] = instrument.symbol

    @exact
    def on_ticker(self, event: TickerUpdated) -> list[Outgoing]:
        """A new reference price: the PositionUpdated of holders whose mark moved enough
        (throttled), and the trading-state changes of holders whose loss reached the
        daily limit."""
        price = reference_from_ticker(event)
        if price is None:
            return []
        at = epoch_ms(event.at)
        references = self.state.references
        current = references.get(event.symbol)
        if current is not None and at < current.at_ms:
            return []
        references[event.symbol] = ReferencePrice(price, at)
        now = self._clock()
        out: list[Outgoing] = []
        for user_id in sorted(self.state.holders.get(event.symbol, ())):
            account = self.state.accounts[user_id]
            self._roll_day(account, now, out)
            position = account.positions[event.symbol]
            self._publish_mark_move(account, position, now, out)
            self._guard_daily_loss(account, position.quote, out)
        return out

    @exact
    def on_user_provisioned(self, user_id: str, event: UserProvisioned, at_ms: int) -> None:
        """The user has an OPEX account; its wallets seed the balances until OPEX's
        first snapshot."""
        account = self.state.account(user_id)
        account.provisioned = True
        account.opex_user_id = str(event.opex_user_id)
        if account.totals is None and event.wallets:
            wallets = [Balance(asset=wallet.asset, free=wallet.free) for wallet in event.wallets]
            apply_snapshot(account, wallets, at_ms)
            account.balances_seeded = True

    @exact
    def on_balances(self, user_id: str, event: BalancesUpdated, at_ms: int) -> list[BalanceDrift]:
        """OPEX's balances of the user as of ``at_ms``; the drifts from what the engine
        expected (the service logs them). The engine's own snapshots are ignored."""
        if event.source is not BalanceSource.OPEX:
            return []
        drifts = apply_snapshot(self.state.account(user_id), event.balances, at_ms)
        if not drifts:
            return []
        self.state.drift_count += len(drifts)
        return drifts

    @exact
    def on_order_event(self, user_id: str, event: OrderEvent, at_ms: int) -> list[Outgoing]:
        """An order event from the gateway (``at_ms``: when it happened): fills move the
        position, the balances and the reservation; a terminal event releases what is
        left. After the terminal event, a late fill (the terminal event re-stated with
        ``last_fill`` and more filled, or FILLED after CANCELED/EXPIRED) still moves the
        position and the balances, and reserves or releases nothing. Fills count once, by
        trade id and by the cumulative filled quantity. Events of orders the engine does
        not hold, its own rejections, and events that add nothing to a closed order change
        nothing."""
        if isinstance(event, OrderRejected) and event.source is RejectSource.RISK:
            return []
        account = self.state.accounts.get(user_id)
        if account is None:
            self.state.ignored_events += 1
            return []
        coid = event.client_order_id
        order = account.open_orders.get(coid)
        if order is None:
            order = account.closed_orders.get(coid)
            if order is None or not event.filled_quantity:
                self.state.ignored_events += 1
                return []
        out: list[Outgoing] = []
        self._roll_day(account, self._clock(), out)
        if event.order_id is not None and order.order_id is None:
            order.order_id = event.order_id
            account.order_ids[event.order_id] = order.client_order_id
        if isinstance(event, OrderAccepted | OrderFilled):
            order.accepted = True
        filled = False
        if event.last_fill is not None:
            filled = self._on_fill(account, order, event, at_ms)
        if order.closed_as is not None:
            filled = self._catch_up(account, order, event, at_ms) or filled
            if not filled:
                self.state.ignored_events += 1
            elif event.status.is_terminal:
                order.closed_as = event.status
        elif event.status.is_terminal:
            filled = self._catch_up(account, order, event, at_ms) or filled
            self._close(account, order, event.status)
        if filled:
            position = account.positions[order.symbol]
            out.append(self._position_event(account, position, self._clock()))
            self._guard_daily_loss(account, position.quote, out)
        return out

    @exact
    def on_timer(self) -> list[Outgoing]:
        """Call every second or so: starts the new UTC day for every account and
        publishes the mark moves the throttle held back."""
        now = self._clock()
        out: list[Outgoing] = []
        for account in self.state.accounts.values():
            self._roll_day(account, now, out)
            limits = self.limits.for_user(account.user_id)
            for position in account.positions.values():
                if position.publish_pending and self._throttle_open(position, limits, now):
                    out.append(self._position_event(account, position, now))
        return out

    @exact
    def balances_view(self, user_id: str) -> BalancesUpdated | None:
        """The user's balances as the engine sees them (source risk): free = available
        after reservations, locked = reserved + locked elsewhere."""
        account = self.state.accounts.get(user_id)
        if account is None or account.totals is None:
            return None
        balances = []
        for asset in sorted(account.totals):
            available = account.available(asset)
            assert available is not None
            locked = account.reserved.get(asset, ZERO) + account.external_locked.get(asset, ZERO)
            balances.append(
                Balance(
                    asset=asset,
                    free=to_wire(max(available, ZERO)),
                    locked=to_wire_ceiling(locked),
                )
            )
        return BalancesUpdated(balances=tuple(balances), source=BalanceSource.RISK)

    # -------------------------------------------------------------------------- replay

    @exact
    def replay(self, user_id: str | None, message: Message, at_ms: int) -> None:
        """Apply one recorded message to rebuild the state after a restart: the market
        topics, users.events, accounts.events, the engine's own OrderApproved and
        OrderRejected, and the gateway's order events, in the order they were recorded.
        Nothing is published."""
        if isinstance(message, InstrumentUpdated):
            self.on_instrument(message)
        elif isinstance(message, TickerUpdated):
            self.on_ticker(message)
        elif user_id is None:
            if isinstance(message, TradingStateChanged):
                self._restore_trading(self.state.global_trading, message)
        elif isinstance(message, UserProvisioned):
            self.on_user_provisioned(user_id, message, at_ms)
        elif isinstance(message, BalancesUpdated):
            self.on_balances(user_id, message, at_ms)
        elif isinstance(message, TradingStateChanged):
            self._restore_trading(self.state.account(user_id).trading, message)
        elif isinstance(message, OrderApproved):
            self._restore_approved(user_id, message, at_ms)
        elif isinstance(message, OrderRejected) and message.source is RejectSource.RISK:
            self.state.account(user_id).seen_client_order_ids.add(message.client_order_id)
        elif isinstance(message, OrderEvent):
            self.on_order_event(user_id, message, at_ms)

    def _restore_approved(self, user_id: str, message: OrderApproved, at_ms: int) -> None:
        account = self.state.account(user_id)
        command = message.command
        coid = command.client_order_id
        if coid in account.open_orders or coid in account.closed_orders:
            return
        base, _, quote = command.symbol.partition("_")
        reservation = message.reservation
        order = OpenOrder(
            client_order_id=coid,
            symbol=command.symbol,
            side=command.side,
            order_type=command.type,
            quantity=command.quantity,
            price=command.price,
            reserve_asset=reservation.asset,
            unit=PNL.divide(reservation.amount, command.quantity),
            reserved=reservation.amount,
            approved_at_ms=at_ms,
            reduce_only=command.reduce_only,
        )
        account.open_orders[coid] = order
        account.seen_client_order_ids.add(coid)
        reserve(account, order)
        position = account.positions.get(command.symbol)
        if position is None:
            position = account.positions[command.symbol] = Position(command.symbol, base, quote)
        position.add_open(command.side, command.quantity)

    @staticmethod
    def _restore_trading(status: TradingStatus, message: TradingStateChanged) -> None:
        status.state = message.state
        status.changed_by = message.changed_by
        status.reason = message.reason
        status.automatic = (
            message.changed_by == ENGINE_ACTOR and message.state is TradingState.REDUCING
        )

    # ------------------------------------------------------------------------- fills

    def _on_fill(self, account: Account, order: OpenOrder, event: OrderEvent, at_ms: int) -> bool:
        """Apply the event's ``last_fill`` unless its trade was seen or the event is older
        than what the order has; fills the event's cumulative quantity says were missed
        are applied first at their implied price. A trade the cumulative state already
        implied (its own event came late) adds only its fee. Whether anything was
        applied."""
        fill = event.last_fill
        assert fill is not None
        key = (order.symbol, fill.trade_id, order.side)
        if key in account.seen_trades:
            return False
        account.seen_trades.add(key)
        at = epoch_ms(fill.executed_at) if fill.executed_at is not None else at_ms
        gap = event.filled_quantity - order.filled_quantity
        if gap <= 0:
            return self._implied_trade(account, order, fill, fill.quantity, fill.fee, at)
        if gap > fill.quantity and event.avg_price is not None:
            missed = gap - fill.quantity
            seen = fill.quantity * fill.price + order.filled_notional
            notional = event.avg_price * event.filled_quantity - seen
            price = to_wire(PNL.divide(notional, missed)) if notional > 0 else event.avg_price
            self._fill(account, order, missed, price, ZERO, None, at, implied=True)
            gap = fill.quantity
        elif gap < fill.quantity:
            # part of this trade was already applied as implied by a cumulative state
            self._implied_trade(account, order, fill, fill.quantity - gap, ZERO, at)
        self._fill(
            account, order, min(gap, fill.quantity), fill.price, fill.fee, fill.fee_asset, at
        )
        return True

    def _implied_trade(
        self,
        account: Account,
        order: OpenOrder,
        fill: Fill,
        quantity: Decimal,
        fee: Decimal,
        at_ms: int,
    ) -> bool:
        """``quantity`` of ``fill`` was already applied at the implied price of an
        earlier cumulative state (without a fee): book the fee, nothing else. Whether
        anything changed."""
        taken = min(quantity, order.implied_quantity)
        if taken <= 0:
            return False
        order.implied_quantity -= taken
        if not fee:
            return False
        position = account.positions[order.symbol]
        position.realized_pnl -= self._fee_in_quote(position, fee, fill.fee_asset, fill.price)
        apply_fee(account, fee=fee, fee_asset=fill.fee_asset, at_ms=at_ms)
        return True

    def _catch_up(self, account: Account, order: OpenOrder, event: OrderEvent, at_ms: int) -> bool:
        """The event says more was filled than the engine saw: apply the rest at its
        implied price (fee unknown: none; booked if the trade's own event comes)."""
        gap = event.filled_quantity - order.filled_quantity
        if gap <= 0 or event.avg_price is None:
            return False
        notional = event.avg_price * event.filled_quantity - order.filled_notional
        price = to_wire(PNL.divide(notional, gap)) if notional > 0 else event.avg_price
        self._fill(account, order, gap, price, ZERO, None, at_ms, implied=True)
        return True

    @staticmethod
    def _fee_in_quote(
        position: Position, fee: Decimal, fee_asset: str | None, price: Decimal
    ) -> Decimal:
        """A fee in the position's quote asset: as is, or a base fee at ``price`` (another
        asset's fee is left out of the P&L)."""
        if not fee or fee_asset is None or fee_asset == position.quote:
            return fee
        if fee_asset == position.base:
            return fee * price
        return ZERO

    def _fill(
        self,
        account: Account,
        order: OpenOrder,
        quantity: Decimal,
        price: Decimal,
        fee: Decimal,
        fee_asset: str | None,
        at_ms: int,
        *,
        implied: bool = False,
    ) -> None:
        quantity = min(quantity, order.remaining)
        if quantity <= 0:
            return
        order.filled_quantity += quantity
        order.filled_notional += quantity * price
        if implied:
            order.implied_quantity += quantity
        position = account.positions[order.symbol]
        if order.closed_as is None:
            consume(account, order, quantity)
            position.add_open(order.side, -quantity)
        # else: a late fill; the terminal event released the reservation and the open
        # quantity, so there is nothing left to consume
        base, quote = position.base, position.quote
        fee_in_quote = self._fee_in_quote(position, fee, fee_asset, price)
        position.apply_fill(order.side, quantity, price, fee_in_quote, at_ms)
        apply_trade(
            account,
            base=base,
            quote=quote,
            side=order.side,
            quantity=quantity,
            price=price,
            fee=fee,
            fee_asset=fee_asset or quote,
            at_ms=at_ms,
        )
        holders = self.state.holders.setdefault(order.symbol, set())
        if position.quantity:
            holders.add(account.user_id)
        else:
            holders.discard(account.user_id)

    def _close(self, account: Account, order: OpenOrder, status: OrderStatus) -> None:
        """The order reached ``status`` (terminal): release what it still holds, and keep
        it among the closed orders for fills learnt later."""
        release(account, order)
        remaining = order.remaining
        if remaining:
            account.positions[order.symbol].add_open(order.side, -remaining)
        del account.open_orders[order.client_order_id]
        order.closed_as = status
        account.closed_orders[order.client_order_id] = order

    # ----------------------------------------------------------- positions and P&L

    def _position_event(self, account: Account, position: Position, now: int) -> Outgoing:
        mark = self.state.mark(position)
        quantity = position.quantity
        entry = to_wire(position.avg_entry) if quantity else ZERO
        message = PositionUpdated(
            position_id=position_id(account.user_id, position.symbol),
            symbol=position.symbol,
            quantity=quantity,
            avg_entry_price=entry if entry > 0 else None,
            realized_pnl=to_wire(position.realized_pnl),
            unrealized_pnl=to_wire(position.unrealized(mark)),
            mark_price=mark,
        )
        position.published_mark = mark
        position.published_at_ms = now
        position.publish_pending = False
        return Outgoing(account.user_id, message)

    @staticmethod
    def _throttle_open(position: Position, limits: RiskLimits, now: int) -> bool:
        published_at = position.published_at_ms
        return published_at is None or now - published_at >= limits.position_publish_throttle_ms

    def _publish_mark_move(
        self, account: Account, position: Position, now: int, out: list[Outgoing]
    ) -> None:
        mark = self.state.mark(position)
        if mark is None:
            return
        limits = self.limits.for_user(account.user_id)
        published = position.published_mark
        if published is not None:
            moved = abs(mark - published)
            if moved < published * limits.mark_move_publish_threshold_pct:
                return
        if self._throttle_open(position, limits, now):
            out.append(self._position_event(account, position, now))
        else:
            position.publish_pending = True

    def _roll_day(self, account: Account, now: int, out: list[Outgoing]) -> None:
        """Start a new UTC day for ``account``: each position's P&L so far becomes its
        day anchor, and a REDUCING the daily-loss guard set is lifted."""
        day = now // DAY_MS
        if account.day == day:
            return
        first = account.day is None
        account.day = day
        if first:
            return  # the account is new today: its P&L so far is all today's
        for position in account.positions.values():
            position.day_anchor = position.total_pnl(self.state.mark(position))
        status = account.trading
        if status.automatic and status.state is TradingState.REDUCING:
            change = self._change(
                status,
                account.user_id,
                TradingState.ACTIVE,
                ENGINE_ACTOR,
                "a new UTC day: the daily loss limit starts again",
                automatic=False,
            )
            if change is not None:
                out.append(change)

    def _guard_daily_loss(self, account: Account, quote: str, out: list[Outgoing]) -> None:
        """Move an ACTIVE user whose day loss in ``quote`` reached the limit to
        REDUCING."""
        status = account.trading
        if status.state is not TradingState.ACTIVE:
            return
        limit = self.limits.for_user(account.user_id).max_daily_loss
        pnl = day_pnl(self.state, account, quote)
        if not loss_breached(pnl, limit):
            return
        change = self._change(
            status,
            account.user_id,
            TradingState.REDUCING,
            ENGINE_ACTOR,
            f"daily loss {-pnl:.2f} {quote} reached the limit {limit:f}",
            automatic=True,
        )
        if change is not None:
            out.append(change)

    # ---------------------------------------------------------------- trading states

    @staticmethod
    def _change(
        status: TradingStatus,
        user_id: str | None,
        state: TradingState,
        changed_by: str,
        reason: str,
        *,
        automatic: bool,
    ) -> Outgoing | None:
        """Set ``status`` to ``state``; the event, or None if nothing changed. The event
        is built (and validated) before the state changes."""
        previous = status.state
        if previous is state:
            status.automatic = status.automatic and automatic
            return None
        message = TradingStateChanged(
            scope=TradingScope.GLOBAL if user_id is None else TradingScope.USER,
            state=state,
            previous_state=previous,
            reason=reason,
            changed_by=changed_by,
        )
        status.state = state
        status.changed_by = changed_by
        status.reason = reason
        status.automatic = automatic
        return Outgoing(user_id, message)
