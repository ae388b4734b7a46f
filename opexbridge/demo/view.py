"""The pipeline as a newcomer watches it: every command on ``orders.commands``, the risk
engine's decision, and what the gateway and OPEX made of it, one row per command,
updated in place (`FlowView`); plus one line per message for a terminal that is not a
TTY (`FlowView.apply` returns them).

Pure: it is fed decoded envelopes with their topic, by `opexbridge.demo.runner` or a
test.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from shared.contracts import (
    BalancesUpdated,
    CancelApproved,
    CancelOrder,
    CancelRejected,
    ClosePosition,
    Envelope,
    OrderApproved,
    OrderEvent,
    OrderRejected,
    PlaceOrder,
    PositionUpdated,
    TickerUpdated,
    TradingStateChanged,
    UserProvisioned,
    UserProvisioningFailed,
    UserRegistered,
)

__all__ = ["FlowView", "Row", "fmt"]

TERMINAL = {"filled", "canceled", "expired", "failed", "rejected"}
_STYLE = {
    "filled": "green",
    "canceled": "yellow",
    "expired": "yellow",
    "failed": "red",
    "rejected": "red",
    "accepted": "cyan",
    "partially_filled": "cyan",
    "submitted": "blue",
    "held": "magenta",
}


def fmt(value: Decimal | None) -> str:
    """A decimal without trailing zeros or exponent (``30000.1``, ``0.01``)."""
    if value is None:
        return "-"
    if value == 0:
        return "0"
    return f"{value.normalize():f}"


@dataclass
class Row:
    """One command and everything that followed from it."""

    key: str
    user_id: str
    kind: str  # place | cancel | close
    symbol: str
    text: str
    at: datetime
    client_order_id: str | None = None
    order_type: str | None = None
    target: str | None = None  # a cancel's client order id
    decision: str | None = None  # approved | rejected | passed | refused
    reason: str | None = None
    status: str | None = None  # the order's last status (gateway / OPEX)
    filled: Decimal = Decimal(0)
    avg_price: Decimal | None = None
    events: list[str] = field(default_factory=list)
    target_done: str | None = None  # a cancel: the target's terminal status

    @property
    def outcome(self) -> str:
        """Where the command ended (so far): ``rejected CODE``, ``filled``, ``canceled``,
        ``open``, ``held``, ``cancel refused CODE``, ``pending``..."""
        if self.kind == "cancel":
            if self.decision == "refused":
                return f"cancel refused {self.reason}"
            return self.target_done or ("cancel passed" if self.decision else "pending")
        if self.decision == "rejected" or self.status == "rejected":
            return f"rejected {self.reason}"
        if self.status in ("filled", "canceled", "expired", "failed"):
            return self.status
        if self.status in ("accepted", "partially_filled"):
            return "open"
        if self.decision == "approved":
            return (
                "held"
                if self.order_type in ("stop", "stop_limit") and not self.status
                else (self.status or "approved")
            )
        return "pending"

    @property
    def settled(self) -> bool:
        """Whether the pipeline is done with it for now: decided, and (approved) resting
        on OPEX, held as a stop, or finished. The script waits for this between steps."""
        if self.kind == "cancel":
            return self.decision == "refused" or self.target_done is not None
        if self.decision is None:
            return False
        if self.decision == "rejected" or self.status in TERMINAL:
            return True
        if self.order_type in ("stop", "stop_limit") and self.status is None:
            return True
        return self.status in ("accepted", "partially_filled") and self.order_type != "market"

    @property
    def is_open(self) -> bool:
        return self.kind != "cancel" and self.decision == "approved" and self.status not in TERMINAL


@dataclass
class UserFigures:
    balances: dict[str, Decimal] = field(default_factory=dict)
    positions: dict[str, PositionUpdated] = field(default_factory=dict)
    provisioned: bool = False


def _describe(data: Any) -> tuple[str, str, str, str | None, str | None, str | None]:
    """(kind, symbol, text, client order id, order type, target)."""
    if isinstance(data, PlaceOrder):
        parts = [f"{data.side} {fmt(data.quantity)} {data.symbol} {data.type}"]
        if data.price is not None:
            parts.append(f"@ {fmt(data.price)}")
        if data.stop_price is not None:
            parts.append(f"stop {fmt(data.stop_price)}")
        return "place", data.symbol, " ".join(parts), data.client_order_id, str(data.type), None
    if isinstance(data, CancelOrder):
        target = data.client_order_id or data.order_id
        return "cancel", data.symbol, f"cancel {target}", None, None, target
    assert isinstance(data, ClosePosition)
    amount = fmt(data.quantity) if data.quantity is not None else "all"
    return (
        "close",
        data.symbol,
        f"close {data.symbol} ({amount})",
        data.client_order_id,
        "market",
        None,
    )


class FlowView:
    """Rows by command, figures by user, counters; fed with `apply`."""

    def __init__(self, *, max_rows: int = 18, names: dict[str, str] | None = None) -> None:
        self.rows: dict[str, Row] = {}
        self._by_order: dict[tuple[str, str], str] = {}
        self._by_correlation: dict[str, str] = {}
        self.users: dict[str, UserFigures] = {}
        self.tickers: dict[str, TickerUpdated] = {}
        self.counts: Counter[str] = Counter()
        self.refusals: Counter[str] = Counter()
        self.max_rows = max_rows
        self.names = dict(names or {})
        self.notes: list[str] = []

    # --------------------------------------------------------------------- feeding

    def name(self, user_id: str | None) -> str:
        if user_id is None:
            return "-"
        return self.names.get(user_id, user_id)

    def row_of(self, user_id: str, client_order_id: str) -> Row | None:
        key = self._by_order.get((user_id, client_order_id))
        return self.rows.get(key) if key else None

    def open_orders(self, user_id: str) -> list[str]:
        """The user's open orders' client order ids, oldest first."""
        return [
            r.client_order_id
            for r in self.rows.values()
            if r.user_id == user_id and r.is_open and r.client_order_id
        ]

    def position(self, user_id: str, symbol: str) -> Decimal:
        found = self.users.get(user_id, UserFigures()).positions.get(symbol)
        return found.quantity if found is not None else Decimal(0)

    def _row_for(self, envelope: Envelope[Any], client_order_id: str | None) -> Row | None:
        user = envelope.user_id or ""
        if client_order_id is not None:
            key = self._by_order.get((user, client_order_id))
            if key is not None:
                return self.rows[key]
        key = self._by_correlation.get(str(envelope.correlation_id))
        row = self.rows.get(key) if key else None
        if row is not None and client_order_id is not None and row.kind != "cancel":
            row.client_order_id = row.client_order_id or client_order_id
            self._by_order[(user, client_order_id)] = row.key
        return row

    def apply(self, topic: str, envelope: Envelope[Any]) -> list[str]:
        """Take one message in; the lines that describe it (empty for market data)."""
        data = envelope.data
        user = envelope.user_id or ""
        who = self.name(envelope.user_id)
        if isinstance(data, PlaceOrder | CancelOrder | ClosePosition):
            kind, symbol, text, coid, order_type, target = _describe(data)
            key = str(envelope.id)
            self.rows[key] = Row(
                key, user, kind, symbol, text, envelope.occurred_at, coid, order_type, target
            )
            self._by_correlation[str(envelope.correlation_id)] = key
            if coid is not None:
                self._by_order[(user, coid)] = key
            self.counts["commands"] += 1
            return [f"{who:>8}  {type(data).__name__:<13} {text}"]
        if isinstance(data, OrderApproved):
            approved = self._row_for(envelope, data.command.client_order_id)
            self.counts["approved"] += 1
            if approved is not None:
                approved.decision = "approved"
                if approved.kind == "close":
                    command = data.command
                    approved.text = (
                        f"close: {command.side} {fmt(command.quantity)} {approved.symbol} market"
                    )
            reserved = (
                f"{fmt(data.reservation.amount.quantize(Decimal('0.01')))} {data.reservation.asset}"
            )
            return [
                f"{who:>8}    risk: approved {data.command.client_order_id} (reserves {reserved})"
            ]
        if isinstance(data, CancelApproved):
            passed = self._row_for(envelope, None)
            if passed is not None:
                passed.decision = "passed"
            return [f"{who:>8}    risk: cancel passed"]
        if isinstance(data, CancelRejected):
            refused = self._row_for(envelope, None)
            if refused is not None:
                refused.decision, refused.reason = "refused", str(data.reason_code)
            return [f"{who:>8}    {data.source}: cancel refused {data.reason_code}"]
        if isinstance(data, OrderEvent):
            return self._order_event(envelope, data, who)
        if isinstance(data, PositionUpdated):
            figures = self.users.setdefault(user, UserFigures())
            figures.positions[data.symbol] = data
            return [
                f"{who:>8}    position {data.symbol} {fmt(data.quantity)} "
                f"(entry {fmt(data.avg_entry_price)}, unrealised {fmt(data.unrealized_pnl)})"
            ]
        if isinstance(data, BalancesUpdated):
            figures = self.users.setdefault(user, UserFigures())
            if str(data.source) == "opex":  # the risk engine's own view is shown, not kept
                figures.balances = {b.asset: b.free + b.locked for b in data.balances}
            shown = ", ".join(
                f"{b.asset} {fmt(b.free)}" for b in data.balances if b.free or b.locked
            )
            return [f"{who:>8}    balances ({data.source}): {shown or 'empty'}"]
        if isinstance(data, TickerUpdated):
            self.tickers[data.symbol] = data
            return []
        if isinstance(data, UserRegistered):
            return [f"{who:>8}  UserRegistered {data.email}"]
        if isinstance(data, UserProvisioned):
            self.users.setdefault(user, UserFigures()).provisioned = True
            return [f"{who:>8}    user_sync: provisioned on OPEX ({data.opex_user_id})"]
        if isinstance(data, UserProvisioningFailed):
            return [f"{who:>8}    user_sync: provisioning FAILED {data.reason_code}: {data.reason}"]
        if isinstance(data, TradingStateChanged):
            return [f"{who:>8}    trading state {data.scope}: {data.state}"]
        return []

    def _order_event(self, envelope: Envelope[Any], data: OrderEvent, who: str) -> list[str]:
        row = self._row_for(envelope, data.client_order_id)
        status = str(data.status).lower()
        source = (
            "risk" if isinstance(data, OrderRejected) and str(data.source) == "risk" else "opex"
        )
        self.counts[status] += 1
        if isinstance(data, OrderRejected):
            self.refusals[str(data.reason_code)] += 1
        if row is not None:
            row.events.append(type(data).__name__)
            if isinstance(data, OrderRejected):
                if source == "risk":
                    row.decision = "rejected"
                row.status = "rejected"
                row.reason = str(data.reason_code)
            else:
                row.status = status
                row.reason = str(data.reason_code) if data.reason_code else row.reason
            row.filled = data.filled_quantity
            row.avg_price = data.avg_price
            if status in TERMINAL and row.client_order_id:
                for other in self.rows.values():
                    if (
                        other.kind == "cancel"
                        and other.user_id == row.user_id
                        and (other.target in (row.client_order_id, data.order_id))
                    ):
                        other.target_done = status
        line = f"{who:>8}    {source}: {type(data).__name__} {data.client_order_id} {status}"
        if data.last_fill is not None:
            line += f" {fmt(data.last_fill.quantity)} @ {fmt(data.last_fill.price)}"
        if data.reason_code:
            line += f" ({data.reason_code})"
        return [line]

    # ------------------------------------------------------------------- rendering

    def render(self, header: str = "") -> Group:
        """The rows (newest last), the users and the counters as rich tables."""
        table = Table(
            "time",
            "user",
            "command",
            "risk",
            "gateway / OPEX",
            "filled",
            expand=False,
            title="orders.commands → risk_engine → order_gateway → OPEX",
            title_justify="left",
        )
        for row in list(self.rows.values())[-self.max_rows :]:
            decision = row.decision or "…"
            if row.decision in ("rejected", "refused"):
                decision = f"[red]{row.decision} {row.reason}[/]"
            elif row.decision in ("approved", "passed"):
                decision = f"[green]{row.decision}[/]"
            if row.kind == "cancel":
                status = row.target_done or ""
            elif row.decision == "rejected":
                status = ""  # it never reached the gateway
            else:
                status = row.status or ("held" if row.outcome == "held" else "")
            style = _STYLE.get(status or "", "")
            shown_status = f"[{style}]{status}[/]" if style and status else status
            filled = f"{fmt(row.filled)} @ {fmt(row.avg_price)}" if row.filled else ""
            table.add_row(
                row.at.strftime("%H:%M:%S"),
                self.name(row.user_id),
                Text(row.text),
                decision,
                shown_status,
                filled,
            )
        users = Table("user", "balances", "positions", title="accounts", title_justify="left")
        for user_id, figures in self.users.items():
            if user_id not in self.names and self.names:
                continue
            balances = ", ".join(
                f"{asset} {fmt(amount.quantize(Decimal('0.0001')))}"
                for asset, amount in sorted(figures.balances.items())
                if amount
            )
            positions = ", ".join(
                f"{p.symbol} {fmt(p.quantity)} (uPnL {fmt(p.unrealized_pnl.quantize(Decimal('0.01')))})"
                for p in figures.positions.values()
            )
            users.add_row(self.name(user_id), balances or "…", positions or "flat")
        c = self.counts
        refused = ", ".join(f"{k} {v}" for k, v in sorted(self.refusals.items()))
        summary = Text.from_markup(
            f"commands [bold]{c['commands']}[/] · approved [green]{c['approved']}[/] · "
            f"rejected [red]{c['rejected']}[/]{f' ({refused})' if refused else ''} · "
            f"accepted {c['accepted']} · filled [green]{c['filled']}[/] · "
            f"canceled {c['canceled']} · expired {c['expired']} · failed {c['failed']}"
        )
        tickers = " · ".join(
            f"{t.symbol} {fmt(t.last_price or t.bid_price)}" for t in self.tickers.values()
        )
        parts: list[Any] = []
        if header:
            parts.append(Text.from_markup(header))
        parts.extend([table, users, summary])
        if tickers:
            parts.append(Text(f"market: {tickers}", style="dim"))
        parts.extend(Text(note, style="dim") for note in self.notes[-3:])
        return Group(*parts)
