"""`GatewayOrder`: one order's persistent state, and what OPEX observations do to it.

Every change goes through the transition table (`states.transition`); a method returns
an `Outcome`: the contract events to publish (through the outbox), the refused
transitions to log and count, anomalies to log, and what the service should do next
(fetch the order's trades, send a deferred cancel). Nothing here raises for an
unexpected observation.

Fills come only from trades (`on_trade`), de-duplicated by trade id, so the cumulative
state (filled quantity, notional, fees per asset) is a sum over a set: the same in any
order of observation. A listing that says OPEX executed more than the trades seen asks
for the trades (``needs_trades``) and holds a terminal status back until they are in,
so the terminal event carries the full fill.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Any

from shared.contracts import (
    CancelOrder,
    CancelRejected,
    Event,
    Fill,
    OrderAccepted,
    OrderApproved,
    OrderCanceled,
    OrderEvent,
    OrderExpired,
    OrderFailed,
    OrderFilled,
    OrderRejected,
    OrderStatus,
    OrderSubmitted,
    OrderType,
    RejectReason,
    RejectSource,
    Side,
    TimeInForce,
    split_symbol,
)

from .observations import ExchangeStatus, ListedOrder, ListedTrade
from .states import IllegalTransition, Transition, transition

__all__ = [
    "OPEX_REFUSAL_REASONS",
    "CancelDecision",
    "CancelDeferred",
    "CancelDone",
    "CancelRefused",
    "Fingerprint",
    "GatewayOrder",
    "Outcome",
    "SendCancel",
    "average_price",
    "refuse_unknown_cancel",
]

S = OrderStatus
_ZERO = Decimal(0)
_AVG = Context(prec=60)
_QUANTUM = Decimal(1).scaleb(-18)

OPEX_REFUSAL_REASONS: Mapping[int, RejectReason] = {
    4001: RejectReason.INSUFFICIENT_BALANCE,
    4002: RejectReason.ORDER_TYPE_NOT_ALLOWED,
    4003: RejectReason.ORDER_VALUE_OUT_OF_BOUNDS,
    6038: RejectReason.INSTRUMENT_NOT_TRADING,
    7002: RejectReason.INSTRUMENT_UNKNOWN,
}
"""OPEX error codes with a closer `RejectReason` than EXCHANGE_REJECTED (OPEX.md)."""

OPEX_ORDER_FINISHED = 7006
"""OPEX's answer to a cancel of a REJECTED, EXPIRED or FILLED order."""


def average_price(notional: Decimal, quantity: Decimal) -> Decimal | None:
    """notional / quantity to 18 decimals (half-even), None for nothing filled."""
    if not quantity:
        return None
    return _AVG.divide(notional, quantity).quantize(_QUANTUM, ROUND_HALF_EVEN, _AVG).normalize(_AVG)


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """What identifies an order in OPEX's listings, where it has no client order id."""

    user_id: str
    symbol: str
    side: Side
    price: Decimal
    quantity: Decimal


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one observation did: events to publish, refusals to log and count."""

    events: tuple[Event, ...] = ()
    refused: tuple[IllegalTransition, ...] = ()
    anomalies: tuple[str, ...] = ()
    needs_trades: bool = False
    """OPEX executed more than the trades seen: fetch ``myTrades`` for this order."""
    send_cancel: bool = False
    """A cancel asked for while the order was in flight can be sent now."""

    def __add__(self, other: Outcome) -> Outcome:
        return Outcome(
            self.events + other.events,
            self.refused + other.refused,
            self.anomalies + other.anomalies,
            self.needs_trades or other.needs_trades,
            self.send_cancel or other.send_cancel,
        )


# ----------------------------------------------------------------------------- cancels


@dataclass(frozen=True, slots=True)
class SendCancel:
    """Send OPEX's cancel for ``opex_order_id``; the order is PENDING_CANCEL until a
    listing confirms the end (OPEX's cancel is asynchronous)."""

    opex_order_id: str


@dataclass(frozen=True, slots=True)
class CancelDeferred:
    """Nothing to send now: the order is in flight (the cancel goes out once it is
    accepted, `Outcome.send_cancel`) or a cancel is already pending."""

    why: str


@dataclass(frozen=True, slots=True)
class CancelDone:
    """The order never reached OPEX (a held stop, a queued order): canceled locally."""

    outcome: Outcome


@dataclass(frozen=True, slots=True)
class CancelRefused:
    """The cancel is refused; publish ``rejection``."""

    rejection: CancelRejected


CancelDecision = SendCancel | CancelDeferred | CancelDone | CancelRefused


def refuse_unknown_cancel(cancel: CancelOrder) -> CancelRejected:
    """The CancelRejected for a cancel naming no order the gateway holds."""
    return CancelRejected(
        symbol=cancel.symbol,
        client_order_id=cancel.client_order_id,
        order_id=cancel.order_id,
        source=RejectSource.EXCHANGE,
        reason_code=RejectReason.ORDER_NOT_FOUND,
        reason="the gateway holds no such order",
    )


# ------------------------------------------------------------------------------- order


@dataclass(slots=True, kw_only=True)
class GatewayOrder:
    """One order, as the gateway persists it."""

    client_order_id: str
    user_id: str
    symbol: str
    side: Side
    order_type: OrderType
    time_in_force: TimeInForce
    quantity: Decimal
    price: Decimal | None = None
    """The command's limit price (limit, stop-limit)."""
    stop_price: Decimal | None = None
    created_at_ms: int
    status: OrderStatus = S.PENDING_SUBMIT
    held: bool = False
    """A stop or stop-limit order waiting for its trigger (OPEX has no stop orders)."""
    send_price: Decimal | None = None
    """The limit price sent to OPEX (a market order's collar price)."""
    send_time_in_force: TimeInForce | None = None
    submitted_at_ms: int | None = None
    """When the placement request started; set, with the intent, before the request."""
    opex_order_id: str | None = None
    filled_quantity: Decimal = _ZERO
    filled_notional: Decimal = _ZERO
    fees: dict[str, Decimal] = field(default_factory=dict)
    seen_trade_ids: set[str] = field(default_factory=set)
    cancel_requested: bool = False
    external: bool = False
    """Found only on OPEX (placed outside the suite): tracked, never published."""

    # ---------------------------------------------------------------- construction

    @classmethod
    def from_approved(cls, user_id: str, approved: OrderApproved, now_ms: int) -> GatewayOrder:
        """The order of an approved command, PENDING_SUBMIT (stops held)."""
        command = approved.command
        return cls(
            client_order_id=command.client_order_id,
            user_id=user_id,
            symbol=command.symbol,
            side=command.side,
            order_type=command.type,
            time_in_force=command.time_in_force,
            quantity=command.quantity,
            price=command.price,
            stop_price=command.stop_price,
            created_at_ms=now_ms,
            held=command.type.needs_stop_price,
        )

    @classmethod
    def from_external(cls, user_id: str, listed: ListedOrder) -> GatewayOrder:
        """An order found only on OPEX, recorded so it is not mistaken for ours."""
        return cls(
            client_order_id=f"external-{listed.order_id}",
            user_id=user_id,
            symbol=listed.symbol,
            side=listed.side,
            order_type=OrderType.LIMIT,
            time_in_force=TimeInForce.GTC,
            quantity=listed.quantity,
            price=listed.price,
            created_at_ms=listed.time_ms,
            status=S.ACCEPTED,
            send_price=listed.price,
            submitted_at_ms=listed.time_ms,
            opex_order_id=listed.order_id,
            external=True,
        )

    # ------------------------------------------------------------------- reading

    @property
    def fingerprint(self) -> Fingerprint | None:
        """The order's identity in OPEX's listings, once its limit price is chosen."""
        if self.send_price is None:
            return None
        return Fingerprint(self.user_id, self.symbol, self.side, self.send_price, self.quantity)

    @property
    def is_in_flight(self) -> bool:
        """Maybe on OPEX, not yet correlated: resolve by asking OPEX, never by resending."""
        if self.opex_order_id is not None:
            return False
        if self.status is S.SUBMITTED:
            return True
        return self.status is S.PENDING_SUBMIT and self.submitted_at_ms is not None

    @property
    def is_open(self) -> bool:
        return not self.status.is_terminal

    @property
    def avg_price(self) -> Decimal | None:
        return average_price(self.filled_notional, self.filled_quantity)

    # ------------------------------------------------------------------ placement

    def release(self) -> None:
        """The stop triggered: the order may now be priced and submitted."""
        self.held = False

    def begin_submit(self, send_price: Decimal, time_in_force: TimeInForce, now_ms: int) -> Outcome:
        """Record the intent (persist it) before the request goes out."""
        if self.status is not S.PENDING_SUBMIT or self.held or self.submitted_at_ms is not None:
            why = "held" if self.held else f"{self.status}, submitted at {self.submitted_at_ms}"
            return Outcome(anomalies=(f"order {self.client_order_id}: not submittable ({why})",))
        self.send_price = send_price
        self.send_time_in_force = time_in_force
        self.submitted_at_ms = now_ms
        return Outcome()

    def on_submit_sent(self) -> Outcome:
        """OPEX took the request, or may have (a timeout, a 5xx): SUBMITTED, in flight.
        Nothing when a listing already correlated the order (it is listed before its
        answer is applied): it is past SUBMITTED, not an illegal move."""
        if self.status is S.SUBMITTED or self.opex_order_id is not None:
            return Outcome()
        return self._move(S.SUBMITTED, "request sent", lambda: self._event(OrderSubmitted))

    def on_submit_not_sent(self) -> Outcome:
        """OPEX surely did nothing (unavailable before sending, 429): may be sent again."""
        if self.status is not S.PENDING_SUBMIT:
            return Outcome(anomalies=(f"order {self.client_order_id}: not sent but {self.status}",))
        self.submitted_at_ms = None
        return Outcome()

    def on_submit_refused(self, code: int | None, message: str = "") -> Outcome:
        """A definite refusal (OPEX's 4xx with its code): REJECTED, source exchange."""
        reason_code = OPEX_REFUSAL_REASONS.get(code or 0, RejectReason.EXCHANGE_REJECTED)
        reason = f"OPEX refused the order (code {code})" + (f": {message}" if message else "")
        return self._move(
            S.REJECTED,
            "refused by OPEX",
            lambda: self._event(
                OrderRejected, source=RejectSource.EXCHANGE, reason_code=reason_code, reason=reason
            ),
        )

    def fail(self, reason_code: RejectReason, reason: str) -> Outcome:
        """Give up on the order (never listed in time): FAILED."""
        return self._move(
            S.FAILED,
            "given up",
            lambda: self._event(OrderFailed, reason_code=reason_code, reason=reason),
        )

    # -------------------------------------------------------------- observations

    def on_listed(self, listed: ListedOrder) -> Outcome:
        """OPEX lists the order (the matcher claimed it for this order, or by its id)."""
        out = Outcome()
        if self.opex_order_id is None:
            problem = self._mismatch(listed)
            if problem:
                return Outcome(anomalies=(problem,))
            moved = self._move(S.ACCEPTED, "listed by OPEX", None, bind=listed.order_id)
            if moved.refused:
                return moved
            out = moved
            if self.cancel_requested:
                out = out + Outcome(send_cancel=True)
        elif self.opex_order_id != listed.order_id:
            return Outcome(
                anomalies=(
                    f"order {self.client_order_id} is OPEX {self.opex_order_id}, "
                    f"not {listed.order_id}",
                )
            )
        missing = listed.executed_quantity > self.filled_quantity
        if missing:
            out = out + Outcome(needs_trades=True)
        status = listed.status
        if status is ExchangeStatus.REJECTED:
            if self.status is not S.REJECTED:
                out = out + self._move(
                    S.REJECTED,
                    "OPEX lists it REJECTED",
                    lambda: self._event(
                        OrderRejected,
                        source=RejectSource.EXCHANGE,
                        reason_code=RejectReason.EXCHANGE_REJECTED,
                        reason="OPEX lists the order as REJECTED",
                    ),
                )
        elif status in (ExchangeStatus.CANCELED, ExchangeStatus.EXPIRED) and not missing:
            target = S.CANCELED if status is ExchangeStatus.CANCELED else S.EXPIRED
            if self.status is not target and self.status is not S.FILLED:
                kind = OrderCanceled if target is S.CANCELED else OrderExpired
                out = out + self._move(target, f"OPEX lists it {status}", lambda: self._event(kind))
        return out

    def on_trade(self, trade: ListedTrade) -> Outcome:
        """One of OPEX's trades: applied once per trade id, cumulative state published."""
        if self.opex_order_id is None or trade.order_id != self.opex_order_id:
            return Outcome(
                anomalies=(
                    f"trade {trade.trade_id} of OPEX order {trade.order_id} is not "
                    f"order {self.client_order_id} ({self.opex_order_id})",
                )
            )
        if trade.trade_id in self.seen_trade_ids:
            return Outcome()
        filled = self.filled_quantity + trade.quantity
        if trade.quantity <= _ZERO or filled > self.quantity:
            return Outcome(
                anomalies=(
                    f"trade {trade.trade_id} of {trade.quantity} would fill order "
                    f"{self.client_order_id} to {filled} of {self.quantity}: not applied",
                )
            )
        if filled == self.quantity:
            target = S.FILLED
        elif self.status in (S.PENDING_CANCEL, S.CANCELED, S.EXPIRED):
            target = self.status
        else:
            target = S.PARTIALLY_FILLED
        step = transition(
            self.status,
            target,
            client_order_id=self.client_order_id,
            cause=f"trade {trade.trade_id}",
        )
        if isinstance(step, IllegalTransition):
            return Outcome(refused=(step,))
        self.seen_trade_ids.add(trade.trade_id)
        self.filled_quantity = filled
        self.filled_notional += trade.price * trade.quantity
        asset = trade.fee_asset or self._received_asset()
        self.fees[asset] = self.fees.get(asset, _ZERO) + trade.fee
        self.status = target
        fill = Fill(
            trade_id=trade.trade_id,
            price=trade.price,
            quantity=trade.quantity,
            fee=trade.fee,
            fee_asset=asset,
            liquidity=trade.liquidity,
            executed_at=_utc(trade.time_ms),
        )
        if target is S.CANCELED:
            event: OrderEvent = self._event(OrderCanceled, last_fill=fill)
        elif target is S.EXPIRED:
            event = self._event(OrderExpired, last_fill=fill)
        else:
            status = S.FILLED if target is S.FILLED else S.PARTIALLY_FILLED
            event = self._event(OrderFilled, status=status, last_fill=fill)
        return Outcome(events=self._publishable(event))

    # -------------------------------------------------------------------- cancels

    def request_cancel(self) -> CancelDecision:
        """What a CancelApproved for this order does."""
        if self.status.is_terminal:
            return CancelRefused(
                self._cancel_rejected(RejectReason.ORDER_NOT_OPEN, f"the order is {self.status}")
            )
        if self.status is S.PENDING_CANCEL:
            return CancelDeferred("a cancel is already pending")
        if self.status is S.PENDING_SUBMIT and not self.is_in_flight:
            return CancelDone(self._move(S.CANCELED, "canceled before sending", self._canceled))
        if self.is_in_flight:
            self.cancel_requested = True
            return CancelDeferred("in flight: the cancel goes out once OPEX lists the order")
        assert self.opex_order_id is not None
        step = self._move(S.PENDING_CANCEL, "cancel requested", None)
        if step.refused:  # pragma: no cover - every open, bound status may cancel
            return CancelRefused(
                self._cancel_rejected(RejectReason.ORDER_NOT_OPEN, str(step.refused[0]))
            )
        self.cancel_requested = True
        return SendCancel(self.opex_order_id)

    def on_cancel_refused(self, code: int | None) -> Outcome:
        """OPEX refused the cancel: the order stays open (a listing will say how it
        ended when the code is 7006, "already finished")."""
        back = S.PARTIALLY_FILLED if self.filled_quantity else S.ACCEPTED
        out = self._move(back, f"cancel refused ({code})", None)
        self.cancel_requested = False
        if code == OPEX_ORDER_FINISHED:
            reason_code, reason = RejectReason.ORDER_NOT_OPEN, "OPEX says the order is finished"
        else:
            reason_code, reason = (
                RejectReason.EXCHANGE_REJECTED,
                f"OPEX refused the cancel ({code})",
            )
        rejection = self._cancel_rejected(reason_code, reason)
        return out + Outcome(events=() if self.external else (rejection,))

    # ------------------------------------------------------------------- helpers

    def _mismatch(self, listed: ListedOrder) -> str | None:
        print_ = self.fingerprint
        if print_ is None or (listed.symbol, listed.side, listed.price, listed.quantity) != (
            print_.symbol,
            print_.side,
            print_.price,
            print_.quantity,
        ):
            return f"OPEX order {listed.order_id} does not match order {self.client_order_id}"
        return None

    def _move(
        self,
        target: OrderStatus,
        cause: str,
        make: Any,
        *,
        bind: str | None = None,
    ) -> Outcome:
        step = transition(self.status, target, client_order_id=self.client_order_id, cause=cause)
        if isinstance(step, IllegalTransition):
            return Outcome(refused=(step,))
        assert isinstance(step, Transition)
        self.status = target
        if bind is not None:
            self.opex_order_id = bind
            return Outcome(events=self._publishable(self._event(OrderAccepted)))
        if make is None:
            return Outcome()
        return Outcome(events=self._publishable(make()))

    def _canceled(self) -> OrderEvent:
        return self._event(OrderCanceled)

    def _publishable(self, event: Event) -> tuple[Event, ...]:
        return () if self.external else (event,)

    def _received_asset(self) -> str:
        base, quote = split_symbol(self.symbol)
        return base if self.side is Side.BUY else quote

    def _event(self, kind: type[OrderEvent], **extra: Any) -> OrderEvent:
        return kind(
            client_order_id=self.client_order_id,
            order_id=self.opex_order_id,
            symbol=self.symbol,
            side=self.side,
            order_type=self.order_type,
            quantity=self.quantity,
            price=self.price,
            filled_quantity=self.filled_quantity,
            avg_price=self.avg_price,
            **extra,
        )

    def _cancel_rejected(self, reason_code: RejectReason, reason: str) -> CancelRejected:
        return CancelRejected(
            symbol=self.symbol,
            client_order_id=self.client_order_id,
            order_id=self.opex_order_id,
            source=RejectSource.EXCHANGE,
            reason_code=reason_code,
            reason=reason,
        )
