"""Trading pairs: steps, order bounds, availability, allowed order types and fee rates.

Defaults (plausible, not OPEX's; OPEX reads them from its databases):

| pair     | price step | quantity step | minOrder | maxOrder  | maker | taker |
|----------|------------|---------------|----------|-----------|-------|-------|
| BTC_USDT | 0.01       | 0.000001      | 10       | 1,000,000 | 0.001 | 0.002 |
| ETH_USDT | 0.01       | 0.0001        | 10       | 1,000,000 | 0.001 | 0.002 |

minOrder/maxOrder bound price x quantity in the quote asset. A pair added later starts
unavailable with minOrder = maxOrder = 1 until configured, as OPEX's matching gateway does.
Fees: OPEX itself keeps maker/taker rates per user tier (accountant `FeeCalculatorImpl.getUserFee`);
the sandbox keeps them per pair, which is what a client can observe for a default user.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal

from .errors import InvalidRequestParam, PairIsExist, SymbolNotFound
from .orders import OrderType

ENGINE_ORDER_TYPES: frozenset[OrderType] = frozenset({OrderType.LIMIT, OrderType.MARKET})
"""The only two types OPEX's engine knows; every other API type becomes LIMIT."""

MAX_FRACTION_DIGITS = 13
"""Budget for decimals(price step) + decimals(quantity step) + decimals(fee rate): the most
digits a fee can carry after the point. With balances below 10**15 (see `wallets`) every
amount fits Decimal's default 28 significant digits, so all arithmetic stays exact."""


def fraction_digits(value: Decimal) -> int:
    exp = value.normalize().as_tuple().exponent
    return max(-exp, 0) if isinstance(exp, int) else 0


@dataclass(frozen=True, slots=True)
class Pair:
    symbol: str
    base: str
    quote: str
    price_step: Decimal
    quantity_step: Decimal
    min_order: Decimal = Decimal(1)
    max_order: Decimal = Decimal(1)
    is_available: bool = False
    order_types: frozenset[OrderType] = ENGINE_ORDER_TYPES
    maker_fee: Decimal = Decimal("0.001")
    taker_fee: Decimal = Decimal("0.002")

    def __post_init__(self) -> None:
        if self.symbol != f"{self.base}_{self.quote}":
            raise InvalidRequestParam("symbol", f"symbol must be BASE_QUOTE, got {self.symbol!r}")
        if self.price_step <= 0 or self.quantity_step <= 0:
            raise InvalidRequestParam("step", "price and quantity steps must be positive")
        if self.min_order < 0 or self.max_order < self.min_order:
            raise InvalidRequestParam("minOrder", "need 0 <= minOrder <= maxOrder")
        for name in ("maker_fee", "taker_fee"):
            rate = getattr(self, name)
            if not Decimal(0) <= rate < 1:
                raise InvalidRequestParam(name, f"{name} must be in [0, 1)")
        if not self.order_types <= ENGINE_ORDER_TYPES:
            raise InvalidRequestParam("orderTypes", "pair order types are LIMIT and/or MARKET")
        digits = (
            fraction_digits(self.price_step)
            + fraction_digits(self.quantity_step)
            + max(fraction_digits(self.maker_fee), fraction_digits(self.taker_fee))
        )
        if digits > MAX_FRACTION_DIGITS:
            raise InvalidRequestParam(
                "step", f"steps and fees need {digits} decimals, at most {MAX_FRACTION_DIGITS}"
            )

    @property
    def binance_symbol(self) -> str:
        return f"{self.base}{self.quote}"


def default_pairs() -> list[Pair]:
    def listed(base: str, price_step: str, quantity_step: str) -> Pair:
        return Pair(
            f"{base}_USDT",
            base,
            "USDT",
            Decimal(price_step),
            Decimal(quantity_step),
            min_order=Decimal(10),
            max_order=Decimal(1_000_000),
            is_available=True,
            maker_fee=Decimal("0.001"),
            taker_fee=Decimal("0.002"),
        )

    return [listed("BTC", "0.01", "0.000001"), listed("ETH", "0.01", "0.0001")]


class PairRegistry:
    """Pairs by native symbol, plus the Binance alias map used by `/v3`."""

    def __init__(self, pairs: Iterable[Pair] = ()) -> None:
        self.by_symbol: dict[str, Pair] = {}  # read-only outside this class
        self._aliases: dict[str, str] = {}
        for pair in pairs:
            self._insert(pair)

    @classmethod
    def with_defaults(cls) -> PairRegistry:
        return cls(default_pairs())

    def _insert(self, pair: Pair) -> None:
        if pair.symbol in self.by_symbol:
            raise PairIsExist(f"{pair.symbol} already exists")
        self.by_symbol[pair.symbol] = pair
        self._aliases[pair.binance_symbol] = pair.symbol

    def add(
        self,
        symbol: str,
        price_step: Decimal,
        quantity_step: Decimal,
        *,
        min_order: Decimal = Decimal(1),
        max_order: Decimal = Decimal(1),
        is_available: bool = False,
        order_types: Iterable[OrderType] = ENGINE_ORDER_TYPES,
        maker_fee: Decimal = Decimal("0.001"),
        taker_fee: Decimal = Decimal("0.002"),
    ) -> Pair:
        """Add a pair as OPEX does: unavailable with minOrder = maxOrder = 1 by default."""
        base, sep, quote = symbol.partition("_")
        if not sep:
            raise InvalidRequestParam("symbol", f"symbol must be BASE_QUOTE, got {symbol!r}")
        pair = Pair(
            symbol,
            base,
            quote,
            price_step,
            quantity_step,
            min_order=min_order,
            max_order=max_order,
            is_available=is_available,
            order_types=frozenset(order_types),
            maker_fee=maker_fee,
            taker_fee=taker_fee,
        )
        self._insert(pair)
        return pair

    def add_pair(self, pair: Pair) -> Pair:
        self._insert(pair)
        return pair

    def configure(
        self,
        symbol: str,
        *,
        is_available: bool | None = None,
        min_order: Decimal | None = None,
        max_order: Decimal | None = None,
        order_types: Iterable[OrderType] | None = None,
        price_step: Decimal | None = None,
        quantity_step: Decimal | None = None,
        maker_fee: Decimal | None = None,
        taker_fee: Decimal | None = None,
    ) -> Pair:
        """The admin `PUT /pair-setting`: change the given settings, keep the others."""
        p = self.get(symbol)
        updated = Pair(
            p.symbol,
            p.base,
            p.quote,
            p.price_step if price_step is None else price_step,
            p.quantity_step if quantity_step is None else quantity_step,
            min_order=p.min_order if min_order is None else min_order,
            max_order=p.max_order if max_order is None else max_order,
            is_available=p.is_available if is_available is None else is_available,
            order_types=p.order_types if order_types is None else frozenset(order_types),
            maker_fee=p.maker_fee if maker_fee is None else maker_fee,
            taker_fee=p.taker_fee if taker_fee is None else taker_fee,
        )
        self.by_symbol[symbol] = updated
        return updated

    def get(self, symbol: str) -> Pair:
        pair = self.by_symbol.get(symbol)
        if pair is None:
            raise SymbolNotFound(f"No symbol found: {symbol}")
        return pair

    def find(self, symbol: str) -> Pair | None:
        return self.by_symbol.get(symbol)

    def resolve_alias(self, alias: str) -> str:
        """`BTCUSDT` -> `BTC_USDT`; unknown alias: 7002 (HTTP 404)."""
        symbol = self._aliases.get(alias)
        if symbol is None:
            raise SymbolNotFound(f"No symbol found: {alias}")
        return symbol

    def alias_of(self, symbol: str) -> str:
        return self.get(symbol).binance_symbol

    @property
    def aliases(self) -> Mapping[str, str]:
        return dict(self._aliases)

    def symbols(self) -> list[str]:
        return list(self.by_symbol)

    def currencies(self) -> set[str]:
        return {a for p in self.by_symbol.values() for a in (p.base, p.quote)}

    def __iter__(self) -> Iterator[Pair]:
        return iter(list(self.by_symbol.values()))

    def __contains__(self, symbol: object) -> bool:
        return symbol in self.by_symbol

    def __len__(self) -> int:
        return len(self.by_symbol)
