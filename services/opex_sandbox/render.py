"""OPEX's JSON: what the api service's Jackson mapper writes (`ApiJacksonConfig.kt`).

Decimals are JSON numbers in plain notation (`30000.01`, never `"30000.01"`; parse them with
`json.loads(..., parse_float=Decimal)`), dates are epoch milliseconds, absent optional
fields are left out (`@JsonInclude(NON_NULL)`), and an order never carries a client order id
(`clientOrderId` is always `""`).
"""

from __future__ import annotations

import json
import re
import secrets
import uuid
from decimal import Decimal
from typing import Any

import orjson

from .domain import Depth, Order, Ticker, Trade, UserTrade

__all__ = [
    "dumps",
    "render_depth",
    "render_order",
    "render_price_change",
    "render_recent_trade",
    "render_user_trade",
]

# Decimals go through json.dumps as marked strings, then lose their quotes: the marker is a
# NUL and a per-process random tag, so no string a client sends can pass for one.
_TAG = secrets.token_hex(8)
_MARK = "\x00" + _TAG
_RAW = re.compile(r'"\\u0000' + _TAG + r'([-0-9.]*)"')
_OUID_NS = uuid.UUID("0b5e7a1c-54d6-4c1e-9a4e-0a3f0c0ffee0")


def _default(value: object) -> str:
    if isinstance(value, Decimal):
        return _MARK + format(value, "f")
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _fragment(value: object) -> orjson.Fragment:
    if isinstance(value, Decimal) and value.is_finite():
        return orjson.Fragment(format(value, "f"))
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(value: Any) -> bytes:
    """JSON with Decimals as plain numbers (orjson, each Decimal written as its plain
    notation; what orjson cannot write, e.g. an integer past 64 bits, goes through
    `json`)."""
    try:
        return orjson.dumps(value, default=_fragment)
    except TypeError:
        return _json_dumps(value)


def _json_dumps(value: Any) -> bytes:
    text = json.dumps(value, default=_default, separators=(",", ":"), ensure_ascii=False)
    if _TAG in text:
        text = _RAW.sub(r"\1", text)
    return text.encode()


def ouid(order: Order) -> str:
    """A stable uuid for the order (OPEX's `ouid`), derived from its pair and id."""
    return str(uuid.uuid5(_OUID_NS, f"{order.symbol}:{order.order_id}"))


def render_order(order: Order, symbol: str) -> dict[str, Any]:
    """QueryOrderResponse, on both surfaces. `symbol` as the caller named it."""
    return {
        "symbol": symbol,
        "ouid": ouid(order),
        "orderId": order.order_id,
        "orderListId": -1,
        "clientOrderId": "",
        "price": order.price,
        "origQty": order.orig_qty,
        "executedQty": order.executed_qty,
        "cummulativeQuoteQty": order.cummulative_quote_qty,
        "status": order.status.value,
        "timeInForce": order.time_in_force.value if order.time_in_force else "GTC",
        "type": order.type.value,
        "side": order.side.value,
        "time": order.time,
        "updateTime": order.update_time,
        "isWorking": order.is_working,
        "origQuoteOrderQty": order.price * order.orig_qty,
    }


def render_cancel(order: Order, symbol: str, order_id: int | None) -> dict[str, Any]:
    """CancelOrderResponse: the order as it is, status CANCELED (the cancel is asynchronous)."""
    body: dict[str, Any] = {"symbol": symbol}
    if order_id is not None:
        body["orderId"] = order_id
    body.update(
        {
            "orderListId": -1,
            "price": order.price,
            "origQty": order.orig_qty,
            "executedQty": order.executed_qty,
            "cummulativeQuoteQty": order.cummulative_quote_qty,
            "status": "CANCELED",
            "timeInForce": order.time_in_force.value if order.time_in_force else "GTC",
            "type": order.type.value,
            "side": order.side.value,
        }
    )
    return body


def render_user_trade(
    trade: UserTrade, symbol: str, *, is_maker: bool, invert_is_buyer: bool
) -> dict[str, Any]:
    """TradeResponse (`/v3/myTrades`)."""
    return {
        "symbol": symbol,
        "id": trade.id,
        "orderId": trade.order_id,
        "orderListId": -1,
        "price": trade.price,
        "qty": trade.qty,
        "quoteQty": trade.quote_qty,
        "commission": trade.commission,
        "commissionAsset": trade.commission_asset,
        "time": trade.time,
        "isBuyer": (not trade.is_buyer) if invert_is_buyer else trade.is_buyer,
        "isMaker": is_maker,
        "isBestMatch": True,
    }


def render_recent_trade(trade: Trade) -> dict[str, Any]:
    """RecentTradeResponse (`/v3/trades`, `/opex/v1/market/trades`)."""
    return {
        "id": trade.trade_id,
        "price": trade.price,
        "qty": trade.qty,
        "quoteQty": trade.quote_qty,
        "time": trade.time,
        "isBuyerMaker": trade.is_buyer_maker,
        "isBestMatch": True,
    }


def render_depth(depth: Depth) -> dict[str, Any]:
    return {
        "lastUpdateId": depth.last_update_id,
        "bids": [[p, q] for p, q in depth.bids],
        "asks": [[p, q] for p, q in depth.asks],
    }


def render_price_change(
    ticker: Ticker, symbol: str, base: str, quote: str, last_qty: Decimal
) -> dict[str, Any]:
    """PriceChange (`/v3/ticker/{24h|7d|1M}`)."""
    return {
        "symbol": symbol,
        "base": base,
        "quote": quote,
        "priceChange": ticker.price_change,
        "priceChangePercent": ticker.price_change_percent,
        "weightedAvgPrice": ticker.weighted_avg_price,
        "lastPrice": ticker.last_price,
        "lastQty": last_qty,
        "bidPrice": ticker.bid_price,
        "askPrice": ticker.ask_price,
        "openPrice": ticker.open_price,
        "highPrice": ticker.high_price,
        "lowPrice": ticker.low_price,
        "volume": ticker.volume,
        "openTime": ticker.open_time,
        "closeTime": ticker.close_time,
        "firstId": ticker.first_id,
        "lastId": ticker.last_id,
        "count": ticker.count,
    }
