"""Net positions per (user, symbol), from fills.

A position is a signed quantity (> 0 long, < 0 short), the average entry price of what is
open, and the realised P&L so far (net of fees), all in the quote asset:

- a fill on the position's side (or from flat) adds to it; the average entry becomes the
  quantity-weighted mean of the old entry and the fill price;
- a fill against it closes ``min(fill, |position|)`` and realises
  ``closed x (fill price - entry) x sign(position)``; what is left of the fill past zero
  opens a new position at the fill price;
- a fee is taken off the realised P&L: as is when paid in the quote asset, at the fill
  price when paid in the base asset (another asset's fee is left out of the P&L).

Unrealised P&L is ``(mark - entry) x quantity``. The position also carries what the engine
needs next to it: the quantity of open orders on each side, the latest fill price (the
mark of last resort), the day's P&L anchor and what was last published.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from shared.contracts import Side

from .amounts import PNL, ZERO

__all__ = ["Position"]


@dataclass(slots=True)
class Position:
    symbol: str
    base: str
    quote: str
    quantity: Decimal = ZERO
    """Signed: the sum of buy fills minus the sum of sell fills."""
    avg_entry: Decimal = ZERO
    """Average entry price of the open quantity; zero when flat."""
    realized_pnl: Decimal = ZERO
    """Since the position was first traded, net of fees."""
    open_buy: Decimal = ZERO
    """Remaining quantity of this user's open buy orders in the symbol."""
    open_sell: Decimal = ZERO
    """Remaining quantity of this user's open sell orders in the symbol."""
    last_fill_price: Decimal | None = None
    last_fill_at_ms: int = 0
    day_anchor: Decimal = ZERO
    """Realised + unrealised P&L at the start of the current UTC day."""
    published_mark: Decimal | None = None
    published_at_ms: int | None = None
    publish_pending: bool = False
    """The mark moved enough to publish, but the throttle held it back."""

    def apply_fill(
        self, side: Side, quantity: Decimal, price: Decimal, fee: Decimal, at_ms: int
    ) -> Decimal:
        """Add a fill of ``quantity`` at ``price`` with ``fee`` (in the quote asset) at
        ``at_ms``; the realised P&L it adds (fee included)."""
        held = self.quantity
        signed = quantity if side is Side.BUY else -quantity
        after = held + signed
        realized = ZERO
        if not held or (held > 0) == (signed > 0):
            size = abs(held)
            cost = size * self.avg_entry + quantity * price
            self.avg_entry = PNL.divide(cost, abs(after))
        else:
            closed = min(quantity, abs(held))
            gain = closed * (price - self.avg_entry)
            realized = gain if held > 0 else -gain
            if not after:
                self.avg_entry = ZERO
            elif (after > 0) != (held > 0):
                self.avg_entry = price
        realized -= fee
        self.quantity = after
        self.realized_pnl += realized
        self.last_fill_price = price
        self.last_fill_at_ms = max(self.last_fill_at_ms, at_ms)
        return realized

    def unrealized(self, mark: Decimal | None) -> Decimal:
        """``(mark - entry) x quantity``; zero when flat or without a mark."""
        if mark is None or not self.quantity:
            return ZERO
        return (mark - self.avg_entry) * self.quantity

    def total_pnl(self, mark: Decimal | None) -> Decimal:
        """Realised + unrealised at ``mark``."""
        return self.realized_pnl + self.unrealized(mark)

    def open_on(self, side: Side) -> Decimal:
        """Remaining quantity of open orders on ``side``."""
        return self.open_buy if side is Side.BUY else self.open_sell

    def add_open(self, side: Side, quantity: Decimal) -> None:
        """Open orders on ``side`` grew by ``quantity`` (negative: shrank)."""
        if side is Side.BUY:
            self.open_buy += quantity
        else:
            self.open_sell += quantity

    def reduces(self, side: Side, quantity: Decimal) -> bool:
        """An order of ``quantity`` on ``side`` only shrinks this position, even if every
        open order on that side fills first."""
        held = self.quantity
        if not held or (side is Side.SELL) != (held > 0):
            return False
        return self.open_on(side) + quantity <= abs(held)
