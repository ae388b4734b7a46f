"""The platform's trading requests as the suite's commands (README.md, REST API).

`place_order`, `cancel_order` and `close_position` turn a request into an `Intent`: the
command's envelope for ``orders.commands``, the 202 body the caller gets, and the
request's fingerprint (what an ``Idempotency-Key`` is bound to). Validation is the
contracts' own (`PlaceOrder` and friends): a request the contracts refuse is a 422
naming the field, with the contract's reason code.

Pure: no broker, no session, no framework.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar
from uuid import uuid4

import orjson
from pydantic import ValidationError

from services.notifier.domain.refusals import Refusal, RefusalCode, from_invalid_message
from shared.contracts import (
    CancelOrder,
    ClosePosition,
    Command,
    Envelope,
    InvalidMessage,
    PlaceOrder,
    encode,
    format_decimal,
    new_message,
)

__all__ = [
    "IDEMPOTENCY_KEY",
    "MAX_BODY_BYTES",
    "Intent",
    "KnownOrder",
    "KnownPosition",
    "Operation",
    "body_too_large",
    "cancel_order",
    "check_idempotency_key",
    "close_position",
    "parse_body",
    "place_order",
]

C = TypeVar("C", bound=Command)

MAX_BODY_BYTES = 16 * 1024
"""A trading request body larger than this is refused (413) before it is parsed."""
IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,128}", re.ASCII)
"""An ``Idempotency-Key``: 1 to 128 printable ASCII characters, no spaces."""


class Operation:
    PLACE_ORDER = "place_order"
    CANCEL_ORDER = "cancel_order"
    CLOSE_POSITION = "close_position"


@dataclass(frozen=True, slots=True)
class Intent:
    """A command the caller asked for, ready to be stored and published."""

    user_id: str
    operation: str
    envelope: Envelope[Any]
    payload: bytes
    client_order_id: str | None
    symbol: str
    target: Callable[[], object]
    """What the request asked for, as its fingerprint covers it (rendered on demand)."""
    response: dict[str, Any]

    @property
    def command_id(self) -> str:
        return str(self.envelope.id)

    @property
    def fingerprint(self) -> str:
        """What an ``Idempotency-Key`` is bound to: computed only when asked (a request
        without a key never needs it)."""
        return _fingerprint(self.operation, self.target())


@dataclass(frozen=True, slots=True)
class KnownOrder:
    """One of the caller's orders as the notifier knows it (an order event, or a
    PlaceOrder it accepted itself and has seen no event of yet)."""

    client_order_id: str
    order_id: str | None
    symbol: str
    status: str
    terminal: bool


@dataclass(frozen=True, slots=True)
class KnownPosition:
    """One of the caller's positions (the latest PositionUpdated)."""

    position_id: str
    symbol: str
    quantity: Decimal


# ------------------------------------------------------------------------- parsing


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(parse_float=Decimal, parse_constant=_refuse_constant)


def body_too_large() -> Refusal:
    """413: a body over `MAX_BODY_BYTES`."""
    return Refusal(413, RefusalCode.BODY_TOO_LARGE, f"a body is at most {MAX_BODY_BYTES} bytes")


def parse_body(raw: bytes, *, required: bool = True) -> dict[str, Any]:
    """A JSON object, numbers as exact `Decimal` (``0.001`` stays ``0.001``).
    An empty body is ``{}`` when not ``required``."""
    if len(raw) > MAX_BODY_BYTES:
        raise body_too_large()
    if not raw.strip() and not required:
        return {}
    try:
        document = _DECODER.decode(raw.decode("utf-8"))
    except (ValueError, RecursionError, ArithmeticError):
        raise Refusal(400, RefusalCode.MALFORMED_JSON, "the body is not UTF-8 JSON") from None
    if not isinstance(document, dict):
        raise Refusal(422, RefusalCode.INVALID_PARAMETER, "the body is a JSON object", field="body")
    return document


def check_idempotency_key(value: str | None) -> str | None:
    if value is None:
        return None
    if not IDEMPOTENCY_KEY.fullmatch(value):
        raise Refusal(
            422,
            RefusalCode.INVALID_IDEMPOTENCY_KEY,
            "Idempotency-Key is 1 to 128 printable ASCII characters without spaces",
            field="Idempotency-Key",
        )
    return value


def _validated(model: type[C], data: dict[str, Any]) -> C:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise from_invalid_message(
            InvalidMessage.from_validation_error(error, subject=model.TYPE)
        ) from None


def _fingerprint(operation: str, target: object) -> str:
    """SHA-256 of ``json.dumps([operation, target], sort_keys=True, separators=(",",
    ":"), default=str)``, rendered by orjson when that is the same text (ASCII only:
    json.dumps escapes the rest), so a key's fingerprint never changes with the
    renderer."""
    text: bytes | None
    try:
        text = orjson.dumps([operation, target], option=orjson.OPT_SORT_KEYS, default=str)
    except orjson.JSONEncodeError:  # e.g. an integer beyond 64 bits
        text = None
    if text is None or not text.isascii():
        text = json.dumps(
            [operation, target], sort_keys=True, separators=(",", ":"), default=str
        ).encode()
    return hashlib.sha256(text).hexdigest()


def _amount(value: Decimal | None) -> str | None:
    return None if value is None else format_decimal(value)


def _intent(
    user_id: str,
    operation: str,
    command: Command,
    *,
    client_order_id: str | None,
    symbol: str,
    target: Callable[[], object],
    response: dict[str, Any],
) -> Intent:
    envelope = new_message(command, user_id=user_id)
    return Intent(
        user_id=user_id,
        operation=operation,
        envelope=envelope,
        payload=encode(envelope),
        client_order_id=client_order_id,
        symbol=symbol,
        target=target,
        response={"command_id": str(envelope.id), **response},
    )


_PLACE_FIELDS = (
    "symbol",
    "side",
    "type",
    "quantity",
    "price",
    "stop_price",
    "time_in_force",
    "leverage",
    "reduce_only",
)


def place_order(
    user_id: str, body: Mapping[str, Any], *, new_id: Callable[[], str] = lambda: uuid4().hex
) -> Intent:
    """A PlaceOrder from the platform's body (``symbol``, ``side``, ``type``,
    ``quantity``, ``price``; optional ``stop_price``, ``time_in_force``, ``leverage``,
    ``reduce_only``, ``client_order_id``). A ``stop`` order with a ``price`` and no
    ``stop_price`` (the platform's way: "price required for limit and stop") triggers at
    that price. Without ``client_order_id`` one is chosen here."""
    data = {name: body[name] for name in _PLACE_FIELDS if body.get(name) is not None}
    order_type = data.get("type")
    if (
        isinstance(order_type, str)
        and order_type.lower() == "stop"
        and "stop_price" not in data
        and "price" in data
    ):
        data["stop_price"] = data.pop("price")
    given = body.get("client_order_id")
    data["client_order_id"] = given if given is not None else new_id()
    order = _validated(PlaceOrder, data)

    def target() -> object:
        return order.model_dump(
            mode="json", exclude=None if given is not None else {"client_order_id"}
        )

    return _intent(
        user_id,
        Operation.PLACE_ORDER,
        order,
        client_order_id=order.client_order_id,
        symbol=order.symbol,
        target=target,
        response={
            "status": "accepted",
            "id": order.client_order_id,
            "client_order_id": order.client_order_id,
            "symbol": order.symbol,
            "side": str(order.side),
            "type": str(order.type),
            "quantity": format_decimal(order.quantity),
            "price": _amount(order.price),
            "stop_price": _amount(order.stop_price),
            "time_in_force": str(order.time_in_force),
        },
    )


def cancel_order(user_id: str, reference: str, order: KnownOrder | None) -> Intent:
    """A CancelOrder for the caller's order named ``reference`` (its client order id or
    OPEX's order id); 404 when the caller has no such order, 409 when it is finished."""
    if order is None:
        raise Refusal(404, RefusalCode.ORDER_NOT_FOUND, "no such order", field="order_id")
    if order.terminal:
        raise Refusal(
            409,
            RefusalCode.ORDER_NOT_OPEN,
            f"the order is {order.status.lower()} and cannot be canceled",
            field="order_id",
        )
    command = _validated(
        CancelOrder,
        {
            "symbol": order.symbol,
            "client_order_id": order.client_order_id,
            "order_id": order.order_id,
        },
    )
    return _intent(
        user_id,
        Operation.CANCEL_ORDER,
        command,
        client_order_id=order.client_order_id,
        symbol=order.symbol,
        target=lambda: {"order": reference},
        response={
            "status": "cancel_requested",
            "id": order.client_order_id,
            "client_order_id": order.client_order_id,
            "order_id": order.order_id,
            "symbol": order.symbol,
        },
    )


def close_position(
    user_id: str, reference: str, position: KnownPosition | None, body: Mapping[str, Any]
) -> Intent:
    """A ClosePosition for the caller's open position named ``reference`` (its id or its
    symbol); all of it, or ``quantity`` of it when the body says so."""
    if position is None:
        raise Refusal(404, RefusalCode.POSITION_NOT_FOUND, "no such position", field="position_id")
    if not position.quantity:
        raise Refusal(
            409, RefusalCode.POSITION_NOT_OPEN, "the position is flat", field="position_id"
        )
    data: dict[str, Any] = {"symbol": position.symbol}
    for name in ("quantity", "client_order_id"):
        if body.get(name) is not None:
            data[name] = body[name]
    command = _validated(ClosePosition, data)
    return _intent(
        user_id,
        Operation.CLOSE_POSITION,
        command,
        client_order_id=command.client_order_id,
        symbol=position.symbol,
        target=lambda: {
            "position": reference,
            "quantity": _amount(command.quantity),
            "client_order_id": command.client_order_id,
        },
        response={
            "status": "close_requested",
            "id": position.position_id,
            "position_id": position.position_id,
            "symbol": position.symbol,
            "quantity": _amount(command.quantity),
            "client_order_id": command.client_order_id,
        },
    )
