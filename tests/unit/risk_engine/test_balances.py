"""OPEX's snapshots, kept exact between them by the fills."""

from __future__ import annotations

from decimal import Decimal

from services.risk_engine.domain import Account
from services.risk_engine.domain.balances import BalanceDrift, apply_snapshot, apply_trade
from shared.contracts import Balance, Side

D = Decimal


def snapshot(
    account: Account, at_ms: int, **free_locked: tuple[str, str]
) -> list[BalanceDrift] | None:
    balances = [
        Balance(asset=asset, free=D(free), locked=D(locked))
        for asset, (free, locked) in free_locked.items()
    ]
    return apply_snapshot(account, balances, at_ms)


def buy(account: Account, at_ms: int, quantity: str = "1", price: str = "100") -> None:
    apply_trade(
        account,
        base="BTC",
        quote="USDT",
        side=Side.BUY,
        quantity=D(quantity),
        price=D(price),
        fee=D("0.001"),
        fee_asset="BTC",
        at_ms=at_ms,
    )


def test_snapshot_when_first_then_totals_are_free_plus_locked_and_no_drift() -> None:
    account = Account("42")

    drifts = snapshot(account, 10, USDT=("900", "100"), BTC=("1", "0"))

    assert drifts == []
    assert account.totals == {"USDT": D(1000), "BTC": D(1)}
    assert account.available("USDT") == D(900)  # OPEX's 100 locked is no order of ours


def test_available_when_opex_locked_our_order_then_not_counted_twice() -> None:
    account = Account("42")
    account.reserved["USDT"] = D(100)  # our reservation for an order OPEX accepted

    snapshot(account, 10, USDT=("900", "100"))

    assert account.available("USDT") == D(900)


def test_available_when_no_snapshot_then_none() -> None:
    assert Account("42").available("USDT") is None


def test_fill_when_after_the_snapshot_then_totals_move() -> None:
    account = Account("42")
    snapshot(account, 10, USDT=("1000", "0"))

    buy(account, 11)

    assert account.totals == {"USDT": D(900), "BTC": D("0.999")}


def test_fill_when_already_in_the_snapshot_then_not_counted_twice() -> None:
    account = Account("42")
    snapshot(account, 10, USDT=("1000", "0"))

    buy(account, 10)

    assert account.totals == {"USDT": D(1000)}


def test_snapshot_when_older_than_recent_fills_then_they_are_kept() -> None:
    account = Account("42")
    snapshot(account, 10, USDT=("1000", "0"))
    buy(account, 20)

    drifts = snapshot(account, 15, USDT=("1000", "0"))  # taken before the fill

    assert drifts == []
    assert account.totals == {"USDT": D(900), "BTC": D("0.999")}


def test_snapshot_when_it_includes_the_fills_then_no_drift() -> None:
    account = Account("42")
    snapshot(account, 10, USDT=("1000", "0"))
    buy(account, 20)

    drifts = snapshot(account, 25, USDT=("900", "0"), BTC=("0.999", "0"))

    assert drifts == []
    assert account.journal == []


def test_snapshot_when_opex_differs_then_drift_per_asset() -> None:
    account = Account("42")
    snapshot(account, 10, USDT=("1000", "0"))

    drifts = snapshot(account, 20, USDT=("1005", "0"), ETH=("1", "0"))

    assert drifts is not None
    assert [(d.asset, d.expected, d.actual, d.difference) for d in drifts] == [
        ("ETH", D(0), D(1), D(1)),
        ("USDT", D(1000), D(1005), D(5)),
    ]
    assert account.drift_count == 2
    assert account.totals == {"USDT": D(1005), "ETH": D(1)}


def test_snapshot_when_older_than_the_last_then_ignored() -> None:
    account = Account("42")
    snapshot(account, 20, USDT=("1000", "0"))

    assert snapshot(account, 19, USDT=("5", "0")) is None
    assert account.totals == {"USDT": D(1000)}


def test_fill_when_before_any_snapshot_then_applied_once_the_snapshot_comes() -> None:
    account = Account("42")
    buy(account, 20)

    snapshot(account, 10, USDT=("1000", "0"))

    assert account.totals == {"USDT": D(900), "BTC": D("0.999")}
