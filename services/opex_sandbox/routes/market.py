"""Public market data: `/v3` (api `binance/controller/MarketController.kt`) and
`/opex/v1/market` (`opex/controller/MarketController.kt`). `/v3` names pairs by their
Binance alias (unknown: 7002), `/opex/v1/market` by the native symbol."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from services.opex_sandbox.domain import DAY_MS, Pair
from services.opex_sandbox.domain.errors import InvalidLimitForRecentTrades, SymbolNotFound
from services.opex_sandbox.domain.pairs import fraction_digits
from services.opex_sandbox.render import render_depth, render_price_change, render_recent_trade
from services.opex_sandbox.web import PUBLIC, Call, begin, json_response

router = APIRouter()

DURATIONS_MS = {"24h": DAY_MS, "7d": 7 * DAY_MS, "1M": 30 * DAY_MS}
ZERO = Decimal(0)


def _alias(call: Call, alias: str | None) -> str:
    if alias is None:
        raise SymbolNotFound()
    return call.sandbox.pairs.resolve_alias(alias)


def _native(call: Call, symbol: str | None) -> str:
    if symbol is None or symbol not in call.sandbox.pairs:
        raise SymbolNotFound()
    return symbol


def _depth(call: Call, symbol: str) -> Response:
    limit = call.long("limit")
    # OPEX builds the "valid limits" error and forgets to throw it: any limit goes
    depth = call.sandbox.engine.depth(symbol, 100 if limit is None else max(limit, 0))
    return json_response(render_depth(depth))


@router.get("/v3/depth")
async def v3_depth(request: Request) -> Response:
    call = await begin(request, PUBLIC)
    return _depth(call, _alias(call, call.required("symbol")))


@router.get("/opex/v1/market/depth")
async def opex_depth(request: Request) -> Response:
    call = await begin(request, PUBLIC)
    return _depth(call, _native(call, call.required("symbol")))


def _trades(call: Call, symbol: str) -> Response:
    limit = call.long("limit")
    limit = 500 if limit is None else limit
    if not 1 <= limit <= 1000:
        raise InvalidLimitForRecentTrades()
    trades = call.sandbox.engine.recent_trades(symbol, limit)
    return json_response([render_recent_trade(t) for t in trades])


@router.get("/v3/trades")
async def v3_trades(request: Request) -> Response:
    call = await begin(request, PUBLIC)
    return _trades(call, _alias(call, call.required("symbol")))


@router.get("/opex/v1/market/trades")
async def opex_trades(request: Request) -> Response:
    call = await begin(request, PUBLIC)
    return _trades(call, _native(call, call.required("symbol")))


def _ticker(call: Call, pair: Pair, window_ms: int, name: str) -> dict[str, Any]:
    engine = call.sandbox.engine
    ticker = engine.ticker(pair.symbol, window_ms)
    last = engine.recent_trades(pair.symbol, 1)
    last_qty = last[0].qty if ticker.count and last else ZERO
    return render_price_change(ticker, name, pair.base, pair.quote, last_qty)


def _tickers(call: Call, duration: str, symbol: str | None, *, alias: bool) -> Response:
    window = DURATIONS_MS[duration]
    quote = call.text("quote")
    pairs = call.sandbox.pairs
    if symbol:
        pair = pairs.get(_alias(call, symbol) if alias else _native(call, symbol))
        rows = [_ticker(call, pair, window, symbol)]
    else:
        rows = [_ticker(call, p, window, p.binance_symbol if alias else p.symbol) for p in pairs]
    if quote:
        rows = [r for r in rows if str(r["quote"]).upper() == quote.upper()]
    return json_response(rows)


def _prices(call: Call, symbol: str | None, *, alias: bool) -> Response:
    pairs = call.sandbox.pairs
    engine = call.sandbox.engine
    if symbol is not None:
        selected = [pairs.get(_alias(call, symbol) if alias else _native(call, symbol))]
    else:
        selected = list(pairs)
    rows = []
    for pair in selected:
        price = engine.last_price(pair.symbol)
        if price is not None:  # OPEX's market query lists pairs that have traded
            name = pair.binance_symbol if alias else pair.symbol
            rows.append({"symbol": name, "price": format(price, "f")})
    return json_response(rows)


# /ticker/price is registered before /ticker/{duration} so that it matches first


@router.get("/v3/ticker/price")
async def v3_ticker_price(request: Request) -> Response:
    call = await begin(request, PUBLIC)
    return _prices(call, call.text("symbol"), alias=True)


@router.get("/opex/v1/market/ticker/price")
async def opex_ticker_price(request: Request) -> Response:
    call = await begin(request, PUBLIC)
    return _prices(call, call.text("symbol"), alias=False)


def _ticker_route(duration: str, *, alias: bool) -> Callable[[Request], Awaitable[Response]]:
    async def ticker(request: Request) -> Response:
        call = await begin(request, PUBLIC)
        return _tickers(call, duration, call.text("symbol"), alias=alias)

    ticker.__name__ = f"{'v3' if alias else 'opex'}_ticker_{duration}"
    return ticker


# `/ticker/{duration:24h|7d|1M}` in OPEX: one fixed route per duration (anything else: 404)
for _duration in DURATIONS_MS:
    router.add_api_route(
        f"/v3/ticker/{_duration}", _ticker_route(_duration, alias=True), methods=["GET"]
    )
    router.add_api_route(
        f"/opex/v1/market/ticker/{_duration}",
        _ticker_route(_duration, alias=False),
        methods=["GET"],
    )


@router.get("/v3/exchangeInfo")
async def v3_exchange_info(request: Request) -> Response:
    call = await begin(request, PUBLIC)
    symbols = []
    for pair in call.sandbox.pairs:
        symbols.append(
            {
                "symbol": pair.binance_symbol,
                "status": "TRADING",
                "baseAsset": pair.base,
                "baseAssetPrecision": fraction_digits(pair.quantity_step),
                "quoteAsset": pair.quote,
                "quoteAssetPrecision": fraction_digits(pair.price_step),
                "orderTypes": ["LIMIT", "MARKET"],
                "icebergAllowed": False,
                "ocoAllowed": False,
                "isSpotTradingAllowed": False,
                "isMarginTradingAllowed": False,
                "filters": [],
                "permissions": ["SPOT"],
            }
        )
    return json_response(
        {
            "timezone": "UTC",
            "serverTime": call.sandbox.clock(),
            "rateLimits": [
                {
                    "rateLimitType": "REQUEST_WEIGHT",
                    "interval": "MINUTE",
                    "intervalNum": 1,
                    "limit": 1200,
                },
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 50},
                {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 16000},
                {
                    "rateLimitType": "RAW_REQUESTS",
                    "interval": "MINUTE",
                    "intervalNum": 5,
                    "limit": 6100,
                },
            ],
            "exchangeFilters": [],
            "fees": [],
            "symbols": symbols,
        }
    )


def order_types_text(pair: Pair) -> str:
    """OPEX's pair-setting `orderTypes`: matching-engine names, comma separated."""
    names = {"LIMIT": "LIMIT_ORDER", "MARKET": "MARKET_ORDER"}
    return ",".join(names[t.value] for t in sorted(pair.order_types, key=lambda t: t.value))


@router.get("/opex/v1/market/pair")
async def opex_pairs(request: Request) -> Response:
    call = await begin(request, PUBLIC)
    return json_response(
        [
            {
                "pair": p.symbol,
                "baseAsset": p.base,
                "quoteAsset": p.quote,
                "isAvailable": p.is_available,
                "minOrder": p.min_order,
                "maxOrder": p.max_order,
                "orderTypes": order_types_text(p),
            }
            for p in call.sandbox.pairs
        ]
    )


@router.get("/opex/v1/market/currency")
async def opex_currencies(request: Request) -> Response:
    call = await begin(request, PUBLIC)
    return json_response(
        [
            {"symbol": c, "name": c, "precision": Decimal("0.00000001"), "isActive": True}
            for c in call.sandbox.wallets.currencies
        ]
    )
