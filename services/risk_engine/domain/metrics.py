"""Account figures the checks compare with the limits: exposure, equity, the day's P&L.

OPEX is a spot exchange but the platform's guide has leverage, so the engine uses one
simple model, per *book* (the positions and balances of one quote asset, e.g. USDT):

- exposure = sum over the book's symbols of worst-case |position| x mark, where the worst
  case is ``max(|q + open buys|, |q - open sells|)`` (every open order on one side fills),
  the order being decided included, valued at its own price;
- equity = the quote asset's total balance + sum of every other asset's total balance x
  its mark in this quote (an asset with no such pair or no price counts 0);
- leverage = exposure / equity, margin ratio = equity / exposure (the checks compare by
  multiplication, so a zero equity never divides);
- day P&L = sum over the book's positions of (realised + unrealised at mark) minus the
  same at the start of the UTC day (each position's ``day_anchor``).

A mark is the newest of the ticker's reference price and the last fill price, however
old (a stale price still measures a position better than none); only the order's own
symbol needs a fresh price, which the price-collar check demands.
"""

from __future__ import annotations

from decimal import Decimal

from shared.contracts import Side

from .amounts import ZERO
from .state import Account, RiskState

__all__ = [
    "book_equity",
    "book_exposure_and_equity",
    "day_pnl",
    "loss_breached",
    "symbol_mark",
]


def symbol_mark(state: RiskState, account: Account, symbol: str) -> Decimal | None:
    """The latest price of ``symbol`` for ``account``: reference or the user's last fill."""
    position = account.positions.get(symbol)
    if position is not None:
        return state.mark(position)
    reference = state.references.get(symbol)
    return reference.price if reference is not None else None


def book_exposure_and_equity(
    state: RiskState,
    account: Account,
    quote: str,
    *,
    symbol: str,
    side: Side,
    quantity: Decimal,
    price: Decimal,
) -> tuple[Decimal, Decimal]:
    """(exposure, equity) of the ``quote`` book if an order of ``quantity`` on ``side``
    in ``symbol`` at ``price`` were added."""
    exposure = ZERO
    seen_order_symbol = False
    for position in account.positions.values():
        if position.quote != quote:
            continue
        held, buys, sells = position.quantity, position.open_buy, position.open_sell
        if position.symbol == symbol:
            seen_order_symbol = True
            mark = price
            if side is Side.BUY:
                buys = buys + quantity
            else:
                sells = sells + quantity
        else:
            known = state.mark(position)
            if known is None:
                continue
            mark = known
        worst = max(abs(held + buys), abs(held - sells))
        if worst:
            exposure += worst * mark
    if not seen_order_symbol:
        exposure += quantity * price
    return exposure, book_equity(state, account, quote)


def book_equity(state: RiskState, account: Account, quote: str) -> Decimal:
    """The ``quote`` book's equity: its balances valued in ``quote``."""
    totals = account.totals
    if not totals:
        return ZERO
    equity = totals.get(quote, ZERO)
    pairs = state.pairs
    for asset, amount in totals.items():
        if not amount or asset == quote:
            continue
        symbol = pairs.get((asset, quote))
        if symbol is None:
            continue
        mark = symbol_mark(state, account, symbol)
        if mark is not None:
            equity += amount * mark
    return equity


def day_pnl(state: RiskState, account: Account, quote: str) -> Decimal:
    """Realised + unrealised P&L of the ``quote`` book since the start of the UTC day."""
    total = ZERO
    for position in account.positions.values():
        if position.quote == quote:
            gain = position.total_pnl(state.mark(position)) - position.day_anchor
            total = total + gain
    return total


def loss_breached(pnl: Decimal, limit: Decimal) -> bool:
    """``pnl`` is a loss of ``limit`` or more (a limit of 0 allows no loss at all)."""
    return pnl < 0 and -pnl >= limit
