from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from typing import Any

import pytest

from services.notifier.domain.refusals import Refusal
from services.notifier.domain.trading import (
    KnownOrder,
    KnownPosition,
    _fingerprint,
    cancel_order,
    check_idempotency_key,
    close_position,
    parse_body,
    place_order,
)
from shared.contracts import CancelOrder, ClosePosition, PlaceOrder, decode

ORDER: dict[str, Any] = {
    "symbol": "BTCUSDT",
    "side": "buy",
    "type": "limit",
    "quantity": Decimal("0.001"),
    "price": Decimal("45000.0"),
}


def refusal(call: Any, *args: Any, **kwargs: Any) -> Refusal:
    with pytest.raises(Refusal) as caught:
        call(*args, **kwargs)
    return caught.value


def test_parse_body_when_numbers_then_exact_decimals() -> None:
    body = parse_body(b'{"quantity": 0.1000000000000000000001, "n": 3}')
    assert body == {"quantity": Decimal("0.1000000000000000000001"), "n": 3}


@pytest.mark.parametrize(
    ("raw", "status", "code"),
    [
        (b"{nope", 400, "malformed_json"),
        (b'{"q": NaN}', 400, "malformed_json"),
        (b"[1]", 422, "invalid_parameter"),
        (b" " * 20_000, 413, "body_too_large"),
    ],
)
def test_parse_body_when_not_an_object_then_refused(raw: bytes, status: int, code: str) -> None:
    error = refusal(parse_body, raw)
    assert (error.status, error.code) == (status, code)


def test_parse_body_when_empty_and_optional_then_empty_object() -> None:
    assert parse_body(b"", required=False) == {}
    assert refusal(parse_body, b"").code == "malformed_json"


def test_place_order_when_platform_body_then_place_order_envelope_and_202_body() -> None:
    intent = place_order("42", ORDER, new_id=lambda: "c-1")
    envelope = decode(intent.payload, topic="orders.commands")
    order = envelope.data_as(PlaceOrder)
    assert envelope.user_id == "42"
    assert (order.client_order_id, order.symbol, order.quantity, order.price) == (
        "c-1",
        "BTC_USDT",
        Decimal("0.001"),
        Decimal("45000"),
    )
    assert intent.response["command_id"] == str(envelope.id)
    assert intent.response["price"] == "45000"
    assert (intent.client_order_id, intent.symbol) == ("c-1", "BTC_USDT")


def test_place_order_when_stop_with_price_then_price_is_the_trigger() -> None:
    intent = place_order("42", {**ORDER, "type": "stop"}, new_id=lambda: "c-2")
    order = intent.envelope.data_as(PlaceOrder)
    assert (order.price, order.stop_price) == (None, Decimal("45000"))


def test_place_order_when_field_invalid_then_422_naming_it() -> None:
    error = refusal(place_order, "42", {**ORDER, "quantity": "0"})
    assert (error.status, error.code, error.field) == (422, "non_positive_amount", "quantity")
    missing = refusal(place_order, "42", {k: v for k, v in ORDER.items() if k != "side"})
    assert (missing.status, missing.code, missing.field) == (422, "missing_field", "side")


def test_fingerprint_when_same_request_then_same_whatever_the_generated_id() -> None:
    first = place_order("42", ORDER)
    second = place_order("42", {**ORDER, "quantity": "0.0010"})
    other = place_order("42", {**ORDER, "quantity": "0.002"})
    assert first.fingerprint == second.fingerprint
    assert first.client_order_id != second.client_order_id
    assert other.fingerprint != first.fingerprint


def test_idempotency_key_when_malformed_then_422() -> None:
    assert check_idempotency_key(None) is None
    assert check_idempotency_key("k-1") == "k-1"
    assert refusal(check_idempotency_key, "has space").field == "Idempotency-Key"
    assert refusal(check_idempotency_key, "x" * 129).code == "invalid_idempotency_key"


def test_cancel_order_when_unknown_or_finished_then_refused_else_cancel() -> None:
    assert refusal(cancel_order, "42", "c-1", None).status == 404
    done = KnownOrder("c-1", "9", "BTC_USDT", "FILLED", terminal=True)
    assert refusal(cancel_order, "42", "c-1", done).code == "order_not_open"
    open_order = KnownOrder("c-1", "9", "BTC_USDT", "accepted", terminal=False)
    cancel = cancel_order("42", "9", open_order).envelope.data_as(CancelOrder)
    assert (cancel.client_order_id, cancel.order_id, cancel.symbol) == ("c-1", "9", "BTC_USDT")


def test_close_position_when_unknown_flat_or_open() -> None:
    assert refusal(close_position, "42", "p-1", None, {}).code == "position_not_found"
    flat = KnownPosition("p-1", "ETH_USDT", Decimal(0))
    assert refusal(close_position, "42", "p-1", flat, {}).code == "position_not_open"
    held = KnownPosition("p-1", "ETH_USDT", Decimal("-2"))
    whole = close_position("42", "p-1", held, {}).envelope.data_as(ClosePosition)
    part = close_position("42", "p-1", held, {"quantity": Decimal(1)})
    assert (whole.symbol, whole.quantity) == ("ETH_USDT", None)
    assert part.envelope.data_as(ClosePosition).quantity == Decimal(1)
    bad = refusal(close_position, "42", "p-1", held, {"quantity": "-1"})
    assert (bad.status, bad.field) == (422, "quantity")


@pytest.mark.parametrize(
    "target",
    [
        {"b": "1", "a": None, "c": True, "n": 3, "nested": {"z": "0.5", "y": ["x", 1]}},
        {"order": "é-ünïcode"},
        {"position": "BTC_USDT", "quantity": None, "client_order_id": "c-1"},
        {"big": 2**70},
    ],
)
def test_fingerprint_when_any_target_then_sha256_of_the_sorted_json_dumps(target: object) -> None:
    text = json.dumps(["op", target], sort_keys=True, separators=(",", ":"), default=str)
    assert _fingerprint("op", target) == hashlib.sha256(text.encode()).hexdigest()
