from __future__ import annotations

from decimal import Decimal

import pytest

from services.opex_sandbox.domain import FEE_ACCOUNT, Wallets
from services.opex_sandbox.domain.errors import (
    CurrencyNotFound,
    InvalidAmount,
    NotEnoughBalance,
    WalletNotFound,
    WalletOwnerNotFound,
)
from services.opex_sandbox.domain.wallets import MAX_TOTAL

D = Decimal
U = "00000000-0000-0000-0000-000000000001"
V = "00000000-0000-0000-0000-000000000002"


@pytest.fixture
def w() -> Wallets:
    wallets = Wallets(["BTC", "USDT"])
    wallets.create_user(U)
    wallets.create_user(V)
    return wallets


def test_create_user_when_new_then_zero_wallet_per_currency(w: Wallets) -> None:
    assert [(b.asset, b.free, b.locked) for b in w.balances(U)] == [
        ("BTC", D(0), D(0)),
        ("USDT", D(0), D(0)),
    ]
    assert w.has_user(FEE_ACCOUNT)


def test_create_user_when_exists_then_idempotent(w: Wallets) -> None:
    w.deposit(U, "BTC", D(1))
    assert w.create_user(U) is False
    assert w.balance(U, "BTC").free == D(1)


def test_add_currency_when_users_exist_then_everyone_gets_zero_wallet(w: Wallets) -> None:
    w.add_currency("ETH")
    assert w.balance(U, "ETH").total == 0
    assert w.balance(FEE_ACCOUNT, "ETH").total == 0
    assert w.deposits("ETH") == 0


def test_balance_when_user_or_currency_unknown_then_typed_error(w: Wallets) -> None:
    with pytest.raises(WalletOwnerNotFound) as exc:
        w.balance("ghost", "BTC")
    assert (exc.value.code, exc.value.http_status) == (6001, 404)
    with pytest.raises(WalletNotFound):
        w.balance(U, "DOGE")
    with pytest.raises(WalletOwnerNotFound):
        w.balances("ghost")


def test_deposit_when_positive_then_free_and_deposit_total_grow(w: Wallets) -> None:
    w.deposit(U, "USDT", D("100.5"))
    assert w.balance(U, "USDT").free == D("100.5")
    assert w.deposits("USDT") == D("100.5")
    assert w.is_conserved()


@pytest.mark.parametrize("amount", [D(0), D(-1)])
def test_deposit_when_not_positive_then_invalid_amount(w: Wallets, amount: Decimal) -> None:
    with pytest.raises(InvalidAmount) as exc:
        w.deposit(U, "USDT", amount)
    assert exc.value.code == 6021


def test_deposit_when_currency_unknown_then_currency_not_found(w: Wallets) -> None:
    with pytest.raises(CurrencyNotFound):
        w.deposit(U, "DOGE", D(1))


def test_lock_when_enough_free_then_moves_to_locked(w: Wallets) -> None:
    w.deposit(U, "BTC", D(2))
    bal = w.lock(U, "BTC", D("1.5"))
    assert (bal.free, bal.locked, bal.total) == (D("0.5"), D("1.5"), D(2))


def test_lock_when_more_than_free_then_not_enough_balance_and_unchanged(w: Wallets) -> None:
    w.deposit(U, "BTC", D(1))
    with pytest.raises(NotEnoughBalance) as exc:
        w.lock(U, "BTC", D("1.01"))
    assert (exc.value.code, exc.value.http_status) == (6018, 400)
    assert (w.balance(U, "BTC").free, w.balance(U, "BTC").locked) == (D(1), D(0))


def test_unlock_when_more_than_locked_then_not_enough_balance(w: Wallets) -> None:
    w.deposit(U, "BTC", D(1))
    w.lock(U, "BTC", D("0.5"))
    with pytest.raises(NotEnoughBalance):
        w.unlock(U, "BTC", D("0.6"))
    assert w.unlock(U, "BTC", D("0.5")).free == D(1)


def test_transfer_locked_when_fee_then_receiver_gets_net_and_fee_account_fee(w: Wallets) -> None:
    w.deposit(U, "USDT", D(1000))
    w.lock(U, "USDT", D(600))
    w.transfer_locked(U, V, "USDT", D(500), fee=D("0.5"))
    assert (w.balance(U, "USDT").free, w.balance(U, "USDT").locked) == (D(400), D(100))
    assert w.balance(V, "USDT").free == D("499.5")
    assert w.balance(FEE_ACCOUNT, "USDT").free == D("0.5")
    assert w.total("USDT") == w.deposits("USDT") == D(1000)


def test_transfer_locked_when_more_than_locked_then_not_enough_balance(w: Wallets) -> None:
    w.deposit(U, "USDT", D(1000))
    w.lock(U, "USDT", D(10))
    with pytest.raises(NotEnoughBalance):
        w.transfer_locked(U, V, "USDT", D(11))
    with pytest.raises(InvalidAmount):
        w.transfer_locked(U, V, "USDT", D(5), fee=D(6))
    assert w.is_conserved()


def test_deposit_when_total_would_reach_limit_then_invalid_amount(w: Wallets) -> None:
    w.deposit(U, "USDT", MAX_TOTAL - 1)
    with pytest.raises(InvalidAmount):
        w.deposit(V, "USDT", D(1))


def test_deposit_when_too_many_decimals_then_invalid_amount(w: Wallets) -> None:
    with pytest.raises(InvalidAmount):
        w.deposit(U, "BTC", D("0.00000000000001"))
    assert w.deposit(U, "BTC", D("0.0000000000001")).free == D("1E-13")
