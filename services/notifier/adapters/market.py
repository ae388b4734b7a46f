"""Public market data for the REST API (README.md, REST API, Market data).

- Ticker: the latest ``TickerUpdated`` of the symbol read from ``market.tickers`` (what
  the gateway publishes; the same frame the ``ticker:<SYMBOL>`` channel pushes). The
  notifier reads that topic from its latest offset, so right after a start it may have
  none yet: then OPEX's 24 h ticker answers (``source: "opex"``).
- Order book: nothing in the suite publishes one, so it is OPEX's depth, always
  (``source: "opex"``), through the shared client; public data, no credentials.

OPEX refusing the symbol is a 404 ``market_not_found``; OPEX unreachable, slow or
rate-limiting is a 503 ``market_data_unavailable``.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from services.notifier.domain.refusals import Refusal, RefusalCode
from shared.contracts import format_decimal
from shared.opex import Depth, OpexError, OpexRefused, Ticker

__all__ = ["MarketData", "OpexMarket"]


class OpexMarket(Protocol):
    """The part of `shared.opex.OpexClient` used here."""

    async def depth(self, symbol: str, limit: int = 100) -> Depth: ...

    async def ticker_24h(self, symbol: str | None = None) -> list[Ticker]: ...


class TickerSource(Protocol):
    def latest_ticker(self, symbol: str) -> str | None: ...


def _unavailable(error: OpexError) -> Refusal:
    if isinstance(error, OpexRefused):
        return Refusal(404, RefusalCode.MARKET_NOT_FOUND, "OPEX has no such market", field="symbol")
    return Refusal(
        503,
        RefusalCode.MARKET_DATA_UNAVAILABLE,
        "OPEX's market data is unavailable; retry later",
        headers={"Retry-After": "1"},
    )


class MarketData:
    def __init__(self, tickers: TickerSource, opex: OpexMarket | None) -> None:
        self._tickers = tickers
        self._opex = opex

    async def ticker(self, symbol: str) -> dict[str, Any]:
        """``symbol``'s latest ticker (``symbol``, ``last_price``, ``bid_price``,
        ``ask_price``, ``volume``, ``at``, ``source``)."""
        frame = self._tickers.latest_ticker(symbol)
        if frame is not None:
            data: dict[str, Any] = json.loads(frame)["data"]
            return {**data, "source": "market.tickers"}
        if self._opex is None:
            raise Refusal(404, RefusalCode.TICKER_NOT_FOUND, "no ticker yet", field="symbol")
        try:
            found = await self._opex.ticker_24h(symbol)
        except OpexError as error:
            raise _unavailable(error) from None
        if not found:
            raise Refusal(404, RefusalCode.TICKER_NOT_FOUND, "no ticker", field="symbol")
        ticker = found[0]
        return {
            "symbol": symbol,
            "last_price": format_decimal(ticker.last_price),
            "bid_price": format_decimal(ticker.bid_price),
            "ask_price": format_decimal(ticker.ask_price),
            "volume": format_decimal(ticker.volume),
            "at": None,
            "source": "opex",
        }

    async def orderbook(self, symbol: str, limit: int) -> dict[str, Any]:
        """OPEX's order book of ``symbol``, ``limit`` levels a side, best first."""
        if self._opex is None:
            raise _unavailable(OpexError("no OPEX configured"))
        try:
            depth = await self._opex.depth(symbol, limit)
        except OpexError as error:
            raise _unavailable(error) from None
        return {
            "symbol": symbol,
            "bids": [
                {"price": format_decimal(b.price), "quantity": format_decimal(b.quantity)}
                for b in depth.bids[:limit]
            ],
            "asks": [
                {"price": format_decimal(a.price), "quantity": format_decimal(a.quantity)}
                for a in depth.asks[:limit]
            ],
            "last_update_id": depth.last_update_id,
            "source": "opex",
        }
