"""Market orders as marketable IOC limit orders (OPEX's MARKET orders are fragile:
OPEX.md, Orders).

buy:  best ask x (1 + collar), rounded UP to the price step (stays marketable)
sell: best bid x (1 - collar), rounded DOWN to the price step (stays marketable)

Fails closed: no best price on the needed side, or one older than the allowed age, is a
`PriceRefusal` (NO_REFERENCE_PRICE), never a guess.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Context, Decimal

from shared.contracts import RejectReason, Side, TickerUpdated

__all__ = ["BestPrices", "PriceRefusal", "marketable_limit_price", "round_to_step"]

_CTX = Context(prec=60)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE = Decimal(1)


@dataclass(frozen=True, slots=True)
class BestPrices:
    """The top of a pair's book at ``at_ms`` (from market.tickers)."""

    bid: Decimal | None
    ask: Decimal | None
    at_ms: int

    @classmethod
    def of(cls, ticker: TickerUpdated) -> BestPrices:
        at_ms = (ticker.at - _EPOCH) // timedelta(milliseconds=1)  # exact, no float
        return cls(ticker.bid_price, ticker.ask_price, at_ms)


@dataclass(frozen=True, slots=True)
class PriceRefusal:
    reason_code: RejectReason
    reason: str


def round_to_step(value: Decimal, step: Decimal, *, up: bool) -> Decimal:
    """The multiple of ``step`` (> 0) at or above (``up``) or at or below ``value``."""
    if step <= 0:
        raise ValueError("a price step is positive")
    units = _CTX.divide(value, step).to_integral_value(
        rounding=ROUND_CEILING if up else ROUND_FLOOR
    )
    return _CTX.multiply(units, step).normalize(_CTX)


def marketable_limit_price(
    side: Side,
    best: BestPrices | None,
    *,
    price_step: Decimal,
    collar_pct: Decimal,
    now_ms: int,
    max_age_ms: int,
) -> Decimal | PriceRefusal:
    """The IOC limit price of a market order, or why there is none."""
    if best is None or now_ms - best.at_ms > max_age_ms:
        return PriceRefusal(RejectReason.NO_REFERENCE_PRICE, "no fresh best price")
    if side is Side.BUY:
        if best.ask is None or best.ask <= 0:
            return PriceRefusal(RejectReason.NO_REFERENCE_PRICE, "no best ask")
        return round_to_step(_CTX.multiply(best.ask, _ONE + collar_pct), price_step, up=True)
    if best.bid is None or best.bid <= 0:
        return PriceRefusal(RejectReason.NO_REFERENCE_PRICE, "no best bid")
    price = round_to_step(_CTX.multiply(best.bid, _ONE - collar_pct), price_step, up=False)
    if price <= 0:
        return PriceRefusal(RejectReason.NO_REFERENCE_PRICE, "best bid below one price step")
    return price
