"""Per (user, asset) balances with `free` and `locked` parts.

Conservation: only deposits change the total of an asset. Trades move value between users,
and fees move it to the exchange fee account (`FEE_ACCOUNT`), so for every asset
sum(free + locked over all users, fee account included) == sum(deposits), exactly.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from .errors import (
    CurrencyNotFound,
    InvalidAmount,
    NotEnoughBalance,
    WalletNotFound,
    WalletOwnerNotFound,
)
from .orders import ZERO
from .pairs import MAX_FRACTION_DIGITS, fraction_digits

FEE_ACCOUNT = "00000000-0000-0000-0000-0000000fee00"
"""The exchange's own account that collects trading fees (OPEX's platform address)."""

MAX_TOTAL = Decimal(10) ** 15
"""Deposits of one asset must stay below this, and deposits carry at most 13 decimals: with
pairs' decimal budget (`pairs.MAX_FRACTION_DIGITS`) every balance then fits Decimal's default
28 significant digits and no addition ever rounds, which conservation relies on."""


@dataclass(slots=True, eq=False)
class Balance:
    user: str
    asset: str
    free: Decimal = ZERO
    locked: Decimal = ZERO

    @property
    def total(self) -> Decimal:
        return self.free + self.locked


class Wallets:
    """Every user has one wallet per known currency, created at zero with the user.

    The matching engine works on `Balance` objects from `accounts` directly (for speed) and
    upholds the same rules; everyone else uses the methods, which refuse negative results.
    """

    def __init__(self, currencies: Iterable[str] = ()) -> None:
        self.currencies: list[str] = []
        self.accounts: dict[tuple[str, str], Balance] = {}
        self._users: dict[str, None] = {}
        self._deposits: dict[str, Decimal] = {}
        for asset in currencies:
            self.add_currency(asset)
        self.create_user(FEE_ACCOUNT)

    # -- users and currencies ------------------------------------------------------------

    def add_currency(self, asset: str) -> None:
        """Register a currency; every existing user gets a zero wallet in it."""
        if asset in self._deposits:
            return
        self.currencies.append(asset)
        self._deposits[asset] = ZERO
        for user in self._users:
            self.accounts[(user, asset)] = Balance(user, asset)

    def create_user(self, user: str) -> bool:
        """Create zero wallets for every currency. Idempotent; True if the user is new."""
        if user in self._users:
            return False
        self._users[user] = None
        for asset in self.currencies:
            self.accounts[(user, asset)] = Balance(user, asset)
        return True

    def has_user(self, user: str) -> bool:
        return user in self._users

    def users(self) -> list[str]:
        return list(self._users)

    # -- reads ---------------------------------------------------------------------------

    def balance(self, user: str, asset: str) -> Balance:
        bal = self.accounts.get((user, asset))
        if bal is None:
            if user not in self._users:
                raise WalletOwnerNotFound(f"No wallet owner {user}")
            raise WalletNotFound(f"No {asset} wallet for {user}")
        return bal

    def balances(self, user: str) -> list[Balance]:
        """A user's wallets in currency registration order."""
        if user not in self._users:
            raise WalletOwnerNotFound(f"No wallet owner {user}")
        return [self.accounts[(user, a)] for a in self.currencies]

    def total(self, asset: str) -> Decimal:
        """Sum of free + locked over every account, fee account included."""
        return sum((b.free + b.locked for (_, a), b in self.accounts.items() if a == asset), ZERO)

    def deposits(self, asset: str) -> Decimal:
        if asset not in self._deposits:
            raise CurrencyNotFound(f"Unknown currency {asset}")
        return self._deposits[asset]

    def is_conserved(self) -> bool:
        return all(self.total(a) == self._deposits[a] for a in self.currencies)

    # -- operations ----------------------------------------------------------------------

    @staticmethod
    def _positive(amount: Decimal) -> None:
        if not amount > 0:
            raise InvalidAmount(f"Amount must be positive, got {amount}")

    def deposit(self, user: str, asset: str, amount: Decimal) -> Balance:
        """The admin manual deposit: credits `free` and the asset's deposit total."""
        self._positive(amount)
        if asset not in self._deposits:
            raise CurrencyNotFound(f"Unknown currency {asset}")
        if self._deposits[asset] + amount >= MAX_TOTAL:
            raise InvalidAmount(f"Total {asset} deposits must stay below {MAX_TOTAL}")
        if fraction_digits(amount) > MAX_FRACTION_DIGITS:
            raise InvalidAmount(f"At most {MAX_FRACTION_DIGITS} decimals")
        bal = self.balance(user, asset)
        bal.free += amount
        self._deposits[asset] += amount
        return bal

    def lock(self, user: str, asset: str, amount: Decimal) -> Balance:
        self._positive(amount)
        bal = self.balance(user, asset)
        if bal.free < amount:
            raise NotEnoughBalance(f"{user} has {bal.free} {asset} free, needs {amount}")
        bal.free -= amount
        bal.locked += amount
        return bal

    def unlock(self, user: str, asset: str, amount: Decimal) -> Balance:
        self._positive(amount)
        bal = self.balance(user, asset)
        if bal.locked < amount:
            raise NotEnoughBalance(f"{user} has {bal.locked} {asset} locked, releases {amount}")
        bal.locked -= amount
        bal.free += amount
        return bal

    def transfer_locked(
        self,
        payer: str,
        receiver: str,
        asset: str,
        amount: Decimal,
        fee: Decimal = ZERO,
    ) -> None:
        """Settle one side of a trade: `amount` leaves the payer's locked balance; the
        receiver's free balance gets `amount - fee`, the fee account `fee`."""
        self._positive(amount)
        if fee < 0 or fee > amount:
            raise InvalidAmount(f"Fee {fee} outside [0, {amount}]")
        src = self.balance(payer, asset)
        dst = self.balance(receiver, asset)
        if src.locked < amount:
            raise NotEnoughBalance(f"{payer} has {src.locked} {asset} locked, pays {amount}")
        src.locked -= amount
        dst.free += amount - fee
        if fee:
            self.accounts[(FEE_ACCOUNT, asset)].free += fee
