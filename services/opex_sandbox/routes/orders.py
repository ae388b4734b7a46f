"""Orders, on OPEX's Binance-style `/v3` (api `binance/controller/AccountController.kt`) and
native `/opex/v1/order` (`opex/controller/OrderController.kt`) surfaces."""

from __future__ import annotations

from enum import Enum

from fastapi import APIRouter, Request
from fastapi.responses import Response

from services.opex_sandbox.domain import Order, OrderType, Side, TimeInForce
from services.opex_sandbox.domain.errors import (
    BadRequest,
    OrderNotFound,
    PairNotFound,
    SymbolNotFound,
)
from services.opex_sandbox.render import render_cancel, render_order, render_user_trade
from services.opex_sandbox.sandbox import validate_new_order
from services.opex_sandbox.web import USER, Call, begin, json_response

router = APIRouter()


class OrderResponseType(Enum):
    ACK = "ACK"
    RESULT = "RESULT"
    FULL = "FULL"


def _v3_symbol(call: Call, alias: str | None) -> str:
    """`/v3` takes the Binance alias; unknown (or none): 7002."""
    if alias is None:
        raise SymbolNotFound()
    return call.sandbox.pairs.resolve_alias(alias)


def _place(call: Call, symbol: str | None, *, native: bool) -> str:
    """Bind, check and queue a new order; returns the symbol as the caller named it."""
    side = call.enum("side", Side, required=True)
    order_type = call.enum("type", OrderType, required=True)
    tif = call.enum("timeInForce", TimeInForce)
    quantity = call.decimal("quantity")
    quote_qty = call.decimal("quoteOrderQty")
    price = call.decimal("price")
    if not native:
        call.text("newClientOrderId")  # accepted and ignored
    stop_price = call.decimal("stopPrice")
    if not native:
        call.decimal("icebergQty")
        call.enum("newOrderRespType", OrderResponseType)
        call.long("recvWindow")
        call.long("timestamp", required=True)  # required, never checked
    assert side is not None
    assert order_type is not None
    sandbox = call.sandbox
    if native:
        assert symbol is not None
        validate_new_order(order_type, price, quantity, tif, stop_price, quote_qty)
        if symbol not in sandbox.pairs:  # the matching gateway's pair-setting lookup
            raise PairNotFound()
        internal = symbol
    else:
        internal = _v3_symbol(call, symbol)
        validate_new_order(order_type, price, quantity, tif, stop_price, quote_qty)
    sandbox.submit(
        call.user.user, internal, side, order_type, tif, quantity, price, quote_qty, stop_price
    )
    return symbol or internal


@router.post("/v3/order")
async def v3_new_order(request: Request) -> Response:
    call = await begin(request, USER, consumes_form=True)
    symbol = call.required("symbol")
    _place(call, symbol, native=False)
    return json_response(
        {
            "symbol": symbol,
            "orderId": -1,
            "orderListId": -1,
            "transactTime": call.sandbox.clock(),
        }
    )


@router.post("/opex/v1/order")
async def opex_new_order(request: Request) -> Response:
    call = await begin(request, USER)
    symbol = call.required("symbol")
    _place(call, symbol, native=True)
    return json_response({"symbol": symbol, "date": call.sandbox.clock()})


def _find(call: Call, internal: str, order_id: int | None) -> Order:
    """The market service's queryOrder: by orderId (client order ids are never stored, so
    an `origClientOrderId` alone finds nothing); unknown pair or order: 7001."""
    if order_id is None or internal not in call.sandbox.pairs:
        raise OrderNotFound()
    return call.sandbox.engine.get_order(call.user.user, internal, order_id)


def _cancel(call: Call, symbol: str, internal: str) -> Response:
    order_id = call.long("orderId")
    orig = call.text("origClientOrderId")
    if order_id is None and orig is None:
        raise BadRequest("'orderId' or 'origClientOrderId' must be sent")
    order = _find(call, internal, order_id)
    call.sandbox.cancel(call.user.user, internal, order.order_id)
    body = render_cancel(order, symbol, order_id)
    if orig is not None:
        body["origClientOrderId"] = orig
    return json_response(body)


@router.delete("/v3/order")
async def v3_cancel_order(request: Request) -> Response:
    call = await begin(request, USER, consumes_form=True)
    symbol = call.required("symbol")
    call.long("orderId")
    call.text("newClientOrderId")
    call.long("recvWindow")
    call.long("timestamp", required=True)
    return _cancel(call, symbol, _v3_symbol(call, symbol))


@router.put("/opex/v1/order")
async def opex_cancel_order(request: Request) -> Response:
    call = await begin(request, USER)
    symbol = call.required("symbol")
    return _cancel(call, symbol, symbol)


@router.get("/v3/order")
async def v3_query_order(request: Request) -> Response:
    call = await begin(request, USER, consumes_form=True)
    symbol = call.required("symbol")
    order_id = call.long("orderId")
    call.text("origClientOrderId")
    call.long("recvWindow")
    call.long("timestamp", required=True)
    order = _find(call, _v3_symbol(call, symbol), order_id)
    return json_response(render_order(order, symbol))


@router.get("/opex/v1/order")
async def opex_query_order(request: Request) -> Response:
    call = await begin(request, USER)
    symbol = call.required("symbol")
    order_id = call.long("orderId")
    call.text("origClientOrderId")
    order = _find(call, symbol, order_id)
    return json_response(render_order(order, symbol))


def _limit(call: Call, default: int, maximum: int | None = None) -> int:
    limit = call.long("limit")
    if limit is None:
        return default
    if maximum is not None:
        limit = min(limit, maximum)
    return max(limit, 0)


@router.get("/v3/openOrders")
async def v3_open_orders(request: Request) -> Response:
    call = await begin(request, USER, consumes_form=True)
    symbol = call.text("symbol")
    call.long("recvWindow")
    call.long("timestamp", required=True)
    limit = call.long("limit")
    internal = _v3_symbol(call, symbol)
    orders = call.sandbox.engine.open_orders(call.user.user, internal)
    if limit is not None:
        orders = orders[: max(limit, 0)]
    return json_response([render_order(o, symbol or internal) for o in orders])


@router.get("/opex/v1/order/open")
async def opex_open_orders(request: Request) -> Response:
    call = await begin(request, USER)
    symbol = call.text("symbol")
    limit = call.long("limit")
    engine = call.sandbox.engine
    if symbol is not None and symbol not in call.sandbox.pairs:
        return json_response([])
    orders = engine.open_orders(call.user.user, symbol)
    if limit is not None:
        orders = orders[: max(limit, 0)]
    return json_response([render_order(o, symbol or o.symbol) for o in orders])


@router.get("/v3/allOrders")
async def v3_all_orders(request: Request) -> Response:
    call = await begin(request, USER, consumes_form=True)
    symbol = call.text("symbol")
    start = call.long("startTime")
    end = call.long("endTime")
    limit = _limit(call, 500, 1000)
    call.long("recvWindow")
    call.long("timestamp", required=True)
    internal = _v3_symbol(call, symbol)
    orders = call.sandbox.engine.all_orders(call.user.user, internal, start, end, limit)
    return json_response([render_order(o, symbol or internal) for o in orders])


@router.get("/v3/myTrades")
async def v3_my_trades(request: Request) -> Response:
    call = await begin(request, USER, consumes_form=True)
    symbol = call.text("symbol")  # `String?` in Kotlin: optional, so none is 7002, not 1020
    start = call.long("startTime")
    end = call.long("endTime")
    from_id = call.long("fromId")
    limit = _limit(call, 500, 1000)
    call.long("recvWindow")
    call.long("timestamp", required=True)
    internal = _v3_symbol(call, symbol)
    rows = _trades(call, internal, symbol or internal, from_id, start, end, limit)
    for row in rows:
        row.pop("isMakerBuyer", None)
    return json_response(rows)


def _trades(
    call: Call,
    internal: str,
    symbol: str,
    from_id: int | None,
    start: int | None,
    end: int | None,
    limit: int,
) -> list[dict[str, object]]:
    sandbox = call.sandbox
    engine = sandbox.engine
    user = call.user.user
    invert = sandbox.config.invert_is_buyer
    out: list[dict[str, object]] = []
    for trade in engine.user_trades(user, internal, from_id, start, end, limit):
        raw = engine.trade(internal, trade.id)
        # OPEX: isMaker = (maker_uuid = user), so a self-trade's single row says maker
        is_maker = raw.maker == user if raw is not None else trade.is_maker
        row = render_user_trade(trade, symbol, is_maker=is_maker, invert_is_buyer=invert)
        if raw is not None:
            row["isMakerBuyer"] = raw.is_buyer_maker
        out.append(row)
    return out


@router.get("/opex/v1/user/history/order")
async def opex_order_history(request: Request) -> Response:
    call = await begin(request, USER)
    symbol = call.text("symbol")
    start = call.long("startTime")
    end = call.long("endTime")
    limit = _limit(call, 10, 1000)
    offset = max(call.long("offset") or 0, 0)
    sandbox = call.sandbox
    symbols = [symbol] if symbol is not None else sandbox.pairs.symbols()
    orders: list[Order] = []
    for s in symbols:
        if s in sandbox.pairs:
            orders.extend(sandbox.engine.all_orders(call.user.user, s, start, end, 1 << 30))
    orders.sort(key=lambda o: (o.update_time, o.order_id), reverse=True)
    page = orders[offset : offset + limit]
    return json_response([_order_data(o) for o in page])


def _order_data(order: Order) -> dict[str, object]:
    pair = order.symbol
    return {
        "symbol": pair,
        "orderId": order.order_id,
        "orderType": "MARKET_ORDER" if order.type is OrderType.MARKET else "LIMIT_ORDER",
        "side": "BID" if order.side is Side.BUY else "ASK",
        "price": order.price,
        "quantity": order.orig_qty,
        "quoteQuantity": order.price * order.orig_qty,
        "executedQuantity": order.executed_qty,
        "takerFee": 0,
        "makerFee": 0,
        "status": order.status.value,
        "createDate": order.time,
        "updateDate": order.update_time,
    }


@router.get("/opex/v1/user/history/trade")
async def opex_trade_history(request: Request) -> Response:
    call = await begin(request, USER)
    symbol = call.text("symbol")
    start = call.long("startTime")
    end = call.long("endTime")
    limit = _limit(call, 10, 1000)
    offset = max(call.long("offset") or 0, 0)
    sandbox = call.sandbox
    rows: list[dict[str, object]] = []
    for s in [symbol] if symbol is not None else sandbox.pairs.symbols():
        if s in sandbox.pairs:
            for row in _trades(call, s, s, None, start, end, 1 << 30):
                row.pop("orderListId")
                row["quantity"] = row.pop("qty")
                row["quoteQuantity"] = row.pop("quoteQty")
                rows.append(row)
    rows.sort(key=lambda r: (r["time"], r["id"]), reverse=True)
    return json_response(rows[offset : offset + limit])
