"""Balances: OPEX's snapshots, kept exact between them by the fills.

The engine keeps each asset's *total* (free + locked at OPEX), not OPEX's free amount, and
subtracts its own reservations from it::

    available = total - reserved - external_locked

OPEX locks funds for an order it has taken; those funds are inside ``total`` and inside
our reservation for the same order, and are subtracted once. ``external_locked`` is what
OPEX had locked at the last snapshot beyond *all* of our reservations (an order placed on
OPEX directly, say); each of our reservations covers at least what OPEX locks for that
order, so it never counts one of ours twice.

Between snapshots each fill moves the totals (a buy: +quantity base, -quantity x price
quote; a sell the reverse; the fee off its asset) and is written to a journal with its
execution time. A snapshot taken at ``as_of`` already contains the fills executed at or
before ``as_of``; the journal's later fills are applied on top of it, so a snapshot that
is older than the last fills does not undo them, and a fill already in a snapshot is not
counted twice. Where the result differs from what the engine expected (from a previous
OPEX snapshot, not from the wallets UserProvisioned seeded), each asset's
difference is a `BalanceDrift` (counted, and returned for the service to log); the
snapshot wins. A snapshot older than the last one is ignored.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from shared.contracts import Balance, Side

from .amounts import ZERO
from .state import Account

__all__ = ["BalanceDrift", "apply_fee", "apply_snapshot", "apply_trade"]


@dataclass(frozen=True, slots=True)
class BalanceDrift:
    """The engine expected ``expected`` of ``asset`` and OPEX says ``actual``."""

    user_id: str
    asset: str
    expected: Decimal
    actual: Decimal

    @property
    def difference(self) -> Decimal:
        return self.actual - self.expected


def apply_snapshot(
    account: Account, balances: Iterable[Balance], as_of_ms: int
) -> list[BalanceDrift] | None:
    """Replace the account's balances with OPEX's as of ``as_of_ms``; the drifts found,
    or None if the snapshot is older than the one held (and ignored)."""
    if account.balances_as_of_ms is not None and as_of_ms < account.balances_as_of_ms:
        return None
    totals: dict[str, Decimal] = {}
    locked: dict[str, Decimal] = {}
    for balance in balances:
        totals[balance.asset] = balance.free + balance.locked
        if balance.locked:
            locked[balance.asset] = balance.locked
    journal = [entry for entry in account.journal if entry[0] > as_of_ms]
    for _, asset, delta in journal:
        totals[asset] = totals.get(asset, ZERO) + delta
    drifts: list[BalanceDrift] = []
    previous = account.totals
    if previous is not None and not account.balances_seeded:
        for asset in sorted(previous.keys() | totals.keys()):
            expected, actual = previous.get(asset, ZERO), totals.get(asset, ZERO)
            if expected != actual:
                drifts.append(BalanceDrift(account.user_id, asset, expected, actual))
    account.totals = totals
    account.opex_locked = locked
    account.external_locked = {
        asset: extra
        for asset, amount in locked.items()
        if (extra := amount - account.reserved.get(asset, ZERO)) > 0
    }
    account.journal = journal
    account.balances_as_of_ms = as_of_ms
    account.balances_seeded = False
    account.drift_count += len(drifts)
    return drifts


def apply_trade(
    account: Account,
    *,
    base: str,
    quote: str,
    side: Side,
    quantity: Decimal,
    price: Decimal,
    fee: Decimal,
    fee_asset: str,
    at_ms: int,
) -> None:
    """Move the account's totals by one fill executed at ``at_ms`` (nothing if the last
    snapshot already contains it)."""
    as_of = account.balances_as_of_ms
    if as_of is not None and at_ms <= as_of:
        return
    notional = quantity * price
    if side is Side.BUY:
        deltas = [(base, quantity), (quote, -notional)]
    else:
        deltas = [(base, -quantity), (quote, notional)]
    if fee:
        deltas.append((fee_asset, -fee))
    totals = account.totals
    for asset, delta in deltas:
        account.journal.append((at_ms, asset, delta))
        if totals is not None:
            totals[asset] = totals.get(asset, ZERO) + delta


def apply_fee(account: Account, *, fee: Decimal, fee_asset: str, at_ms: int) -> None:
    """Take the fee of a trade executed at ``at_ms`` whose quantity was already counted
    (at the implied price of a cumulative state) off the totals (nothing if the last
    snapshot already contains it)."""
    as_of = account.balances_as_of_ms
    if not fee or (as_of is not None and at_ms <= as_of):
        return
    account.journal.append((at_ms, fee_asset, -fee))
    if account.totals is not None:
        account.totals[fee_asset] = account.totals.get(fee_asset, ZERO) - fee
