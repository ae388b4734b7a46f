"""Trading pair symbols.

Inside the suite a symbol is OPEX's native ``BASE_QUOTE`` (``BTC_USDT``). On input
`Symbol` also reads ``btc_usdt``, ``BTC-USDT``, ``BTC/USDT`` and the Binance-style
alias ``BTCUSDT`` / ``btcusdt``. Without a separator the quote asset is found at the
end of the string among `QUOTE_ASSETS`, the longest match first (``BTCTUSD`` is
``BTC_TUSD``, not ``BTCT_USD``). Each asset is 2 to 10 ASCII letters or digits.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, StringConstraints

from shared.contracts._errors import refusal
from shared.contracts._reasons import ReasonCode

__all__ = ["QUOTE_ASSETS", "Symbol", "normalize_symbol", "split_symbol"]

QUOTE_ASSETS: tuple[str, ...] = (
    "USDT",
    "USDC",
    "BUSD",
    "TUSD",
    "BTC",
    "ETH",
    "IRT",
    "EUR",
    "USD",
    "DAI",
)
"""Quote assets recognised at the end of a symbol written without a separator."""

_QUOTES_LONGEST_FIRST = tuple(sorted(QUOTE_ASSETS, key=len, reverse=True))
_SEPARATED = re.compile(r"([A-Za-z0-9]{2,10})[_/-]([A-Za-z0-9]{2,10})", re.ASCII)
_JOINED = re.compile(r"[A-Za-z0-9]{4,20}", re.ASCII)
_MAX_INPUT = 21


def normalize_symbol(value: str) -> str:
    """The canonical ``BASE_QUOTE`` form of ``value``; `ValueError` if it is not a symbol.

    >>> normalize_symbol("btcusdt")
    'BTC_USDT'
    """
    if len(value) <= _MAX_INPUT:
        separated = _SEPARATED.fullmatch(value)
        if separated is not None:
            return f"{separated[1].upper()}_{separated[2].upper()}"
        if _JOINED.fullmatch(value):
            upper = value.upper()
            for quote in _QUOTES_LONGEST_FIRST:
                if upper.endswith(quote) and 2 <= len(upper) - len(quote) <= 10:
                    return f"{upper[: -len(quote)]}_{quote}"
    raise ValueError(
        f"{value[:24]!r} is not a symbol: write BASE_QUOTE (BTC_USDT) or BASEQUOTE with a "
        f"known quote asset (BTCUSDT)"
    )


def split_symbol(symbol: str) -> tuple[str, str]:
    """``(base, quote)`` of a symbol in any accepted spelling: ``("BTC", "USDT")``."""
    base, _, quote = normalize_symbol(symbol).partition("_")
    return base, quote


def _validate(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return normalize_symbol(value)
        except ValueError as exc:
            raise refusal(ReasonCode.INVALID_SYMBOL, str(exc)) from None
    return value


Symbol = Annotated[str, StringConstraints(strict=True), BeforeValidator(_validate)]
"""A trading pair, canonical ``BASE_QUOTE`` (``BTC_USDT``)."""
