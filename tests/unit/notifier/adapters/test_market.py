from __future__ import annotations

from decimal import Decimal

import pytest

from services.notifier.adapters.market import MarketData
from services.notifier.domain.refusals import Refusal
from shared.opex import Depth, OpexRefused, OpexUnavailable, Ticker


class Tickers:
    def __init__(self, frames: dict[str, str]) -> None:
        self.frames = frames

    def latest_ticker(self, symbol: str) -> str | None:
        return self.frames.get(symbol)


class Opex:
    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.calls: list[tuple[str, int]] = []

    async def depth(self, symbol: str, limit: int = 100) -> Depth:
        self.calls.append((symbol, limit))
        if self.error:
            raise self.error
        return Depth.model_validate(
            {
                "lastUpdateId": 7,
                "bids": [["100.5", "2"], ["100", "1"]],
                "asks": [["101", "3"]],
            }
        )

    async def ticker_24h(self, symbol: str | None = None) -> list[Ticker]:
        if self.error:
            raise self.error
        return [Ticker.model_validate({"symbol": "BTC_USDT", "lastPrice": "30000.10"})]


FRAME = '{"type":"ticker","data":{"symbol":"ETH_USDT","last_price":"2000.5"}}'


async def test_ticker_when_published_then_from_market_tickers_else_opex() -> None:
    market = MarketData(Tickers({"ETH_USDT": FRAME}), Opex())
    assert await market.ticker("ETH_USDT") == {
        "symbol": "ETH_USDT",
        "last_price": "2000.5",
        "source": "market.tickers",
    }
    fallback = await market.ticker("BTC_USDT")
    assert (fallback["source"], Decimal(fallback["last_price"])) == ("opex", Decimal("30000.1"))


async def test_orderbook_when_opex_answers_then_levels_as_decimal_strings() -> None:
    opex = Opex()
    book = await MarketData(Tickers({}), opex).orderbook("BTC_USDT", 1)
    assert book["bids"] == [{"price": "100.5", "quantity": "2"}]
    assert book["asks"] == [{"price": "101", "quantity": "3"}]
    assert opex.calls == [("BTC_USDT", 1)]


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (OpexRefused("unknown symbol"), 404, "market_not_found"),
        (OpexUnavailable("down"), 503, "market_data_unavailable"),
    ],
)
async def test_orderbook_when_opex_fails_then_typed_refusal(
    error: Exception, status: int, code: str
) -> None:
    with pytest.raises(Refusal) as caught:
        await MarketData(Tickers({}), Opex(error)).orderbook("BTC_USDT", 5)
    assert (caught.value.status, caught.value.code) == (status, code)
