"""From the suite's events to what a trader's screen receives.

Each user event becomes a `StreamItem`: the frame type (``order_update``,
``order_rejected``, ``cancel_rejected``, ``position_update``, ``account_update``), its
channel, its ``data`` (the platform's field names, amounts as decimal strings) and the
change it makes to the latest state that the REST snapshots serve. A global
`TradingStateChanged` becomes a `GlobalNotice` (no user, no seq) and a `TickerUpdated` a
`TickerFrame`.

Pure: the frame of an item is rendered once its ``seq`` is known (`StreamItem.frame`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson

from services.notifier.domain.protocol import ACCOUNT, ORDERS, POSITIONS, TICKER_PREFIX
from shared.contracts import (
    BalancesUpdated,
    CancelRejected,
    Envelope,
    OrderEvent,
    OrderRejected,
    PositionUpdated,
    TickerUpdated,
    TradingScope,
    TradingStateChanged,
    format_decimal,
    format_timestamp,
)

__all__ = [
    "CHANNEL_NAMES",
    "BalanceState",
    "GlobalNotice",
    "OrderState",
    "PositionState",
    "StateChange",
    "StreamItem",
    "TickerFrame",
    "TradingStateState",
    "frame_head",
    "frame_parts",
    "order_data",
    "position_data",
    "render_frame",
    "ticker_frame",
    "translate",
]

CHANNEL_NAMES = {ORDERS: "orders", POSITIONS: "positions", ACCOUNT: "account"}


def _dumps(value: Any) -> str:
    """Compact JSON text (UTF-8 as is, no ``\\uXXXX`` escapes beyond what JSON needs)."""
    return orjson.dumps(value).decode()


def _amount(value: Decimal | None) -> str | None:
    return None if value is None else format_decimal(value)


def _computed(value: Decimal) -> str:
    """A computed amount in canonical form (``0.000`` is ``0``, ``1.50`` is ``1.5``)."""
    return format_decimal(value.normalize()) if value else "0"


# ----------------------------------------------------------------- state changes


@dataclass(frozen=True, slots=True)
class OrderState:
    """The latest state of one order (key: user, client_order_id)."""

    client_order_id: str
    symbol: str
    status: str
    terminal: bool
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class PositionState:
    """The latest state of one position (key: user, symbol)."""

    symbol: str
    quantity: Decimal
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class BalanceState:
    """Balances of some assets (key: user, asset); other assets keep theirs."""

    balances: tuple[dict[str, Any], ...]


@dataclass(frozen=True, slots=True)
class TradingStateState:
    """The user's trading state (key: user)."""

    data: dict[str, Any]


StateChange = OrderState | PositionState | BalanceState | TradingStateState


# ------------------------------------------------------------------------ items


@functools.cache
def frame_head(kind: str, channel: int) -> str:
    """A user frame's text before its seq."""
    return f'{{"type":"{kind}","channel":"{CHANNEL_NAMES[channel]}","seq":'


def frame_parts(kind: str, channel: int, data_json: str, timestamp: str) -> tuple[str, str]:
    """A user frame as JSON text around its seq: ``head + str(seq) + tail``
    (hand-assembled: ``data_json`` is already JSON)."""
    return frame_head(kind, channel), f',"data":{data_json},"timestamp":"{timestamp}"}}'


def render_frame(kind: str, channel: int, seq: int, data_json: str, timestamp: str) -> str:
    """A user frame as JSON text."""
    head, tail = frame_parts(kind, channel, data_json, timestamp)
    return f"{head}{seq}{tail}"


@dataclass(frozen=True, slots=True)
class StreamItem:
    """One event of a user's stream, before it has its ``seq``."""

    user_id: str
    message_id: UUID
    kind: str
    channel: int
    data_json: str
    timestamp: str
    state: StateChange | None

    def frame(self, seq: int) -> str:
        return render_frame(self.kind, self.channel, seq, self.data_json, self.timestamp)

    def frame_parts(self) -> tuple[str, str]:
        """``(head, tail)`` with ``frame(seq) == head + str(seq) + tail``."""
        return frame_parts(self.kind, self.channel, self.data_json, self.timestamp)


@dataclass(frozen=True, slots=True)
class GlobalNotice:
    """Trading switched for everyone: pushed to every ``account`` subscriber, kept as
    the latest global state, outside the users' streams."""

    message_id: UUID
    data: dict[str, Any]
    frame: str


@dataclass(frozen=True, slots=True)
class TickerFrame:
    """The latest prices of a symbol, for its public ``ticker:<SYMBOL>`` channel."""

    symbol: str
    frame: str


# ------------------------------------------------------------------------- data


def order_data(event: OrderEvent | CancelRejected, at: datetime) -> dict[str, Any]:
    """``order_update`` / ``order_rejected`` / ``cancel_rejected`` data: the platform's
    ``id``, ``status``, ``filled_quantity``, ``filled_price`` (the average fill price),
    and the rest of the order's cumulative state."""
    return _order_data(event, format_timestamp(at))


def _order_data(event: OrderEvent | CancelRejected, updated_at: str) -> dict[str, Any]:
    if isinstance(event, CancelRejected):
        return {
            "id": event.client_order_id or event.order_id,
            "client_order_id": event.client_order_id,
            "order_id": event.order_id,
            "symbol": event.symbol,
            "source": str(event.source),
            "reason_code": str(event.reason_code),
            "reason": event.reason,
            "event": event.TYPE,
            "updated_at": updated_at,
        }
    fill = event.last_fill
    data: dict[str, Any] = {
        "id": event.client_order_id,
        "client_order_id": event.client_order_id,
        "order_id": event.order_id,
        "symbol": event.symbol,
        "side": str(event.side),
        "type": str(event.order_type),
        "status": event.status.value.lower(),
        "quantity": format_decimal(event.quantity),
        "price": _amount(event.price),
        "filled_quantity": format_decimal(event.filled_quantity),
        "filled_price": _amount(event.avg_price),
        "remaining_quantity": _computed(event.remaining_quantity),
        "last_fill": None
        if fill is None
        else {
            "trade_id": fill.trade_id,
            "price": format_decimal(fill.price),
            "quantity": format_decimal(fill.quantity),
            "fee": format_decimal(fill.fee),
            "fee_asset": fill.fee_asset,
            "liquidity": str(fill.liquidity),
            "executed_at": None if fill.executed_at is None else format_timestamp(fill.executed_at),
        },
        "reason_code": None if event.reason_code is None else str(event.reason_code),
        "reason": event.reason,
        "event": event.TYPE,
        "updated_at": updated_at,
    }
    if isinstance(event, OrderRejected):
        data["source"] = str(event.source)
    return data


def position_data(event: PositionUpdated, at: datetime) -> dict[str, Any]:
    """``position_update`` data: the platform's ``id``, ``symbol``, ``quantity`` (signed:
    below zero is short), ``unrealized_pnl``, and the rest of the position."""
    return _position_data(event, format_timestamp(at))


def _position_data(event: PositionUpdated, updated_at: str) -> dict[str, Any]:
    side = event.side
    return {
        "id": event.position_id,
        "symbol": event.symbol,
        "side": None if side is None else str(side),
        "quantity": format_decimal(event.quantity),
        "avg_entry_price": _amount(event.avg_entry_price),
        "unrealized_pnl": format_decimal(event.unrealized_pnl),
        "realized_pnl": format_decimal(event.realized_pnl),
        "mark_price": _amount(event.mark_price),
        "leverage": format_decimal(event.leverage),
        "updated_at": updated_at,
    }


def _trading_state_data(event: TradingStateChanged, updated_at: str) -> dict[str, Any]:
    return {
        "kind": "trading_state",
        "scope": str(event.scope),
        "state": str(event.state),
        "previous_state": None if event.previous_state is None else str(event.previous_state),
        "reason": event.reason,
        "updated_at": updated_at,
    }


def ticker_frame(event: TickerUpdated) -> TickerFrame:
    data = {
        "symbol": event.symbol,
        "last_price": _amount(event.last_price),
        "bid_price": _amount(event.bid_price),
        "ask_price": _amount(event.ask_price),
        "volume": format_decimal(event.volume),
        "at": format_timestamp(event.at),
    }
    frame = _dumps(
        {
            "type": "ticker",
            "channel": TICKER_PREFIX + event.symbol,
            "data": data,
            "timestamp": data["at"],
        }
    )
    return TickerFrame(event.symbol, frame)


# -------------------------------------------------------------------- translate


def _item(
    envelope: Envelope[Any],
    kind: str,
    channel: int,
    data: dict[str, Any],
    state: StateChange | None,
    timestamp: str,
) -> StreamItem:
    assert envelope.user_id is not None  # user-keyed topics always carry one
    return StreamItem(
        user_id=envelope.user_id,
        message_id=envelope.id,
        kind=kind,
        channel=channel,
        data_json=_dumps(data),
        timestamp=timestamp,
        state=state,
    )


def translate(envelope: Envelope[Any]) -> StreamItem | GlobalNotice | TickerFrame | None:
    """What ``envelope`` means to the notifier; None for messages it does not push."""
    event = envelope.data
    if isinstance(event, TickerUpdated):
        return ticker_frame(event)
    stamp = format_timestamp(envelope.occurred_at)  # the frame's timestamp and updated_at
    if isinstance(event, OrderEvent):
        data = _order_data(event, stamp)
        kind = "order_rejected" if isinstance(event, OrderRejected) else "order_update"
        state = OrderState(
            event.client_order_id,
            event.symbol,
            data["status"],
            event.status.is_terminal,
            data,
        )
        return _item(envelope, kind, ORDERS, data, state, stamp)
    if isinstance(event, CancelRejected):
        return _item(envelope, "cancel_rejected", ORDERS, _order_data(event, stamp), None, stamp)
    if isinstance(event, PositionUpdated):
        data = _position_data(event, stamp)
        return _item(
            envelope,
            "position_update",
            POSITIONS,
            data,
            PositionState(event.symbol, event.quantity, data),
            stamp,
        )
    if isinstance(event, BalancesUpdated):
        balances = tuple(
            {"asset": b.asset, "free": format_decimal(b.free), "locked": format_decimal(b.locked)}
            for b in event.balances
        )
        data = {
            "kind": "balances",
            "balances": list(balances),
            "source": str(event.source),
            "updated_at": stamp,
        }
        return _item(envelope, "account_update", ACCOUNT, data, BalanceState(balances), stamp)
    if isinstance(event, TradingStateChanged):
        data = _trading_state_data(event, stamp)
        if event.scope is TradingScope.GLOBAL:
            frame = _dumps(
                {"type": "trading_state", "channel": "account", "data": data, "timestamp": stamp}
            )
            return GlobalNotice(envelope.id, data, frame)
        return _item(envelope, "account_update", ACCOUNT, data, TradingStateState(data), stamp)
    return None
