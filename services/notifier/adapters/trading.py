"""The platform's trading REST API (README.md, REST API): thin routes over
`domain.trading` (what a request means), `adapters.commands.CommandStore` (durable,
idempotent acceptance), `adapters.market.MarketData` and `adapters.readiness.Readiness`.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the annotations of the
# routes defined inside `trading_router` at run time, and those name local dependencies.

from typing import Annotated, Any, Protocol
from uuid import UUID

import orjson
from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from pydantic.config import JsonDict
from starlette.types import Receive, Scope, Send

from services.notifier.adapters.commands import Accepted
from services.notifier.adapters.errors import ERROR_RESPONSES, ErrorBody, error_response
from services.notifier.adapters.market import MarketData
from services.notifier.adapters.readiness import Readiness
from services.notifier.adapters.rest import (
    authenticate,
    bearer_identity,
    bearer_token,
    symbol_param,
)
from services.notifier.domain.auth import Identity
from services.notifier.domain.refusals import Refusal, RefusalCode
from services.notifier.domain.trading import (
    MAX_BODY_BYTES,
    Intent,
    KnownOrder,
    KnownPosition,
    body_too_large,
    cancel_order,
    check_idempotency_key,
    close_position,
    parse_body,
    place_order,
)
from shared.observability.tracing import traceparent_for

__all__ = ["CommandWriter", "PlaceOrderEndpoint", "accept_place_order", "trading_router"]

ID_PATTERN = r"^[A-Za-z0-9._:-]{1,64}$"
"""An order or position id in a path: a client order id, OPEX's id, or a symbol."""


class CommandWriter(Protocol):
    """`adapters.commands.CommandStore` as the routes see it."""

    async def submit(self, intent: Intent, idempotency_key: str | None = None) -> Accepted: ...

    async def find_order(self, user_id: str, reference: str) -> KnownOrder | None: ...

    async def find_position(
        self, user_id: str, reference: str, symbol: str | None
    ) -> KnownPosition | None: ...


class _Verifier(Protocol):
    async def verify(self, token: str) -> Identity: ...


# ------------------------------------------------------------- documented shapes


_AMOUNT: JsonDict = {
    "anyOf": [{"type": "number"}, {"type": "string"}],
    "description": "decimal amount",
}


class PlaceOrderBody(BaseModel):
    """The platform's order (integration guide, Place Order). Amounts may be JSON numbers
    or decimal strings; they are exact decimals inside."""

    symbol: str = Field(examples=["BTCUSDT"])
    side: str = Field(examples=["buy"], description="buy | sell")
    type: str = Field(examples=["market"], description="market | limit | stop | stop_limit")
    quantity: Any = Field(json_schema_extra=_AMOUNT, examples=[0.001])
    price: Any = Field(
        default=None,
        json_schema_extra=_AMOUNT,
        description="required for limit and stop_limit; a stop order's trigger when "
        "stop_price is absent",
    )
    stop_price: Any = Field(default=None, json_schema_extra=_AMOUNT)
    time_in_force: str | None = Field(default=None, description="GTC | IOC | FOK")
    leverage: Any = Field(default=None, json_schema_extra=_AMOUNT)
    reduce_only: bool | None = None
    client_order_id: str | None = Field(
        default=None, description="chosen by the server when absent"
    )


class ClosePositionBody(BaseModel):
    quantity: Any = Field(default=None, json_schema_extra=_AMOUNT, description="default: all")
    client_order_id: str | None = None


class CommandAccepted(BaseModel):
    """202: the command is durably accepted and will be published to orders.commands;
    its outcome follows on the WebSocket and in GET /api/trading/orders."""

    command_id: str
    status: str = Field(description="accepted | cancel_requested | close_requested")
    id: str | None = None
    client_order_id: str | None = None
    symbol: str


def _body_schema(model: type[BaseModel], *, required: bool) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": required,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    }


_ACCEPTED: dict[int | str, dict[str, Any]] = {
    202: {
        "model": CommandAccepted,
        "description": "accepted (or the replay of an accepted request)",
    },
    400: {"model": ErrorBody, "description": "the body is not JSON"},
    413: {"model": ErrorBody, "description": "the body is too large"},
}


def _traceparent(result: Accepted) -> str:
    """The W3C trace of the accepted command (its id is the chain's correlation id, so
    the trace id of everything it causes): a caller links its own trace to it."""
    command_id = UUID(str(result.response["command_id"]))
    return traceparent_for(command_id, command_id)


def _accepted(result: Accepted) -> JSONResponse:
    headers = {"traceparent": _traceparent(result)}
    if result.replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(result.response, status_code=202, headers=headers)


async def accept_place_order(
    commands: CommandWriter, user: Identity, key: str | None, body: bytes
) -> Accepted:
    """``POST /api/trading/orders`` once the caller is known: the one implementation
    behind both `PlaceOrderEndpoint` and the FastAPI route that documents it."""
    key = check_idempotency_key(key)
    intent = place_order(user.user_id, parse_body(body))
    return await commands.submit(intent, key)


_JSON = (b"content-type", b"application/json")
_REPLAYED = (b"idempotent-replayed", b"true")


async def _send_accepted(send: Send, result: Accepted) -> None:
    """The 202 as `_accepted`'s `JSONResponse` sends it (the same headers and compact
    JSON), without building a response object."""
    body = orjson.dumps(result.response)
    length = (b"content-length", str(len(body)).encode())
    trace = (b"traceparent", _traceparent(result).encode())
    headers = [_REPLAYED, trace, length, _JSON] if result.replayed else [trace, length, _JSON]
    await send({"type": "http.response.start", "status": 202, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class _Disconnected(Exception):
    """The client left before its request's body arrived."""


async def _read_body(receive: Receive) -> bytes:
    """The request body; 413 beyond `MAX_BODY_BYTES` (what is over is read, not kept)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size <= MAX_BODY_BYTES:
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    if size > MAX_BODY_BYTES:
        raise body_too_large()
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class PlaceOrderEndpoint:
    """``POST /api/trading/orders`` as a plain ASGI app, ahead of FastAPI's middleware,
    routing and dependency solving (the API's hot path; `NotifierApp` sends it here).
    The same answers as the FastAPI route, which stays for the OpenAPI document: the
    bearer token read as `HTTPBearer` reads it, `accept_place_order`, and errors rendered by
    `adapters.errors.error_response` as the app's exception handlers render them."""

    def __init__(self, commands: CommandWriter, verifier: _Verifier) -> None:
        self._commands = commands
        self._verifier = verifier

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        authorization: str | None = None
        key: str | None = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                if authorization is None:
                    authorization = value.decode("latin-1")
            elif name == b"idempotency-key" and key is None:
                key = value.decode("latin-1")
        try:
            user = await authenticate(self._verifier, bearer_token(authorization))
            body = await _read_body(receive)
            result = await accept_place_order(self._commands, user, key, body)
        except _Disconnected:
            return
        except Exception as error:
            await error_response(error)(scope, receive, send)
            return
        await _send_accepted(send, result)


def trading_router(
    commands: CommandWriter,
    verifier: _Verifier,
    market: MarketData,
    readiness: Readiness,
) -> APIRouter:
    router = APIRouter(responses=ERROR_RESPONSES)
    User = Annotated[Identity, Depends(bearer_identity(verifier))]
    IdempotencyKey = Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="makes a retry safe: the same key from the same user returns the "
            "first answer and publishes once (kept 24 h)",
        ),
    ]

    @router.post(
        "/api/trading/orders",
        tags=["trading"],
        status_code=202,
        response_model=CommandAccepted,
        responses=_ACCEPTED,
        openapi_extra=_body_schema(PlaceOrderBody, required=True),
    )
    async def place(request: Request, user: User, key: IdempotencyKey = None) -> JSONResponse:
        """Place an order: validated by the suite's contracts, published as PlaceOrder."""
        return _accepted(await accept_place_order(commands, user, key, await request.body()))

    @router.delete(
        "/api/trading/orders/{order_id}",
        tags=["trading"],
        status_code=202,
        response_model=CommandAccepted,
        responses={
            **_ACCEPTED,
            404: {"model": ErrorBody, "description": "the caller has no such order"},
            409: {"model": ErrorBody, "description": "the order is finished"},
        },
    )
    async def cancel(
        user: User,
        order_id: Annotated[str, Path(pattern=ID_PATTERN)],
        key: IdempotencyKey = None,
    ) -> JSONResponse:
        """Cancel one of the caller's orders (client order id or OPEX's order id)."""
        key = check_idempotency_key(key)
        order = await commands.find_order(user.user_id, order_id)
        return _accepted(await commands.submit(cancel_order(user.user_id, order_id, order), key))

    @router.post(
        "/api/trading/positions/{position_id}/close",
        tags=["trading"],
        status_code=202,
        response_model=CommandAccepted,
        responses={
            **_ACCEPTED,
            404: {"model": ErrorBody, "description": "the caller has no such position"},
            409: {"model": ErrorBody, "description": "the position is flat"},
        },
        openapi_extra=_body_schema(ClosePositionBody, required=False),
    )
    async def close(
        request: Request,
        user: User,
        position_id: Annotated[str, Path(pattern=ID_PATTERN)],
        key: IdempotencyKey = None,
    ) -> JSONResponse:
        """Close one of the caller's positions (its id, or its symbol), all of it or
        ``quantity`` of it."""
        key = check_idempotency_key(key)
        body = parse_body(await request.body(), required=False)
        symbol: str | None
        try:
            symbol = symbol_param(position_id, field="position_id")
        except Refusal:
            symbol = None
        position = await commands.find_position(user.user_id, position_id, symbol)
        intent = close_position(user.user_id, position_id, position, body)
        return _accepted(await commands.submit(intent, key))

    @router.get("/api/market/ticker/{symbol}", tags=["market"])
    async def ticker(symbol: Annotated[str, Path(max_length=32)]) -> dict[str, Any]:
        """The latest ticker from market.tickers (OPEX's 24 h ticker until one arrived)."""
        normalized = symbol_param(symbol)
        if normalized is None:  # pragma: no cover - a path segment is never empty
            raise Refusal(422, RefusalCode.INVALID_SYMBOL, "no symbol", field="symbol")
        return await market.ticker(normalized)

    @router.get("/api/market/orderbook/{symbol}", tags=["market"])
    async def orderbook(
        symbol: Annotated[str, Path(max_length=32)],
        limit: Annotated[int, Query(ge=1, le=500)] = 20,
    ) -> dict[str, Any]:
        """OPEX's order book, ``limit`` levels a side, best first (public, no token)."""
        normalized = symbol_param(symbol)
        if normalized is None:  # pragma: no cover
            raise Refusal(422, RefusalCode.INVALID_SYMBOL, "no symbol", field="symbol")
        return await market.orderbook(normalized, limit)

    @router.get(
        "/api/trading/health",
        tags=["health"],
        responses={503: {"description": "trading is impaired (the failing checks say why)"}},
    )
    async def health() -> JSONResponse:
        """Readiness of the suite for trading: broker, database, OPEX, services."""
        report = await readiness.report()
        return JSONResponse(report.body, status_code=200 if report.ready else 503)

    return router
