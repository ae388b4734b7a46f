"""Bytes to envelopes and back (shared/contracts/_codec.py): round trips for every
registered message, and hostile input refused with typed errors."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.contracts import (
    MAX_MESSAGE_SIZE,
    ContractError,
    Envelope,
    InvalidMessage,
    MalformedJson,
    Message,
    MessageTooLarge,
    PlaceOrder,
    ReasonCode,
    Registry,
    TickerUpdated,
    Topic,
    UnknownMessageType,
    WrongTopic,
    decode,
    encode,
    models_for_topic,
    new_message,
    registry,
)
from shared.contracts.testing import example, example_envelope, examples

ALL_EXAMPLES = [
    pytest.param(data, id=f"{model.TYPE}-{index}")
    for model in registry
    for index, data in enumerate(examples(model))
]
ALL_ENVELOPES = [example_envelope(data) for model in registry for data in examples(model)]
PLACE = example_envelope(example(PlaceOrder))
PLACE_JSON: dict[str, Any] = json.loads(encode(PLACE))


def raw_of(document: Any) -> bytes:
    return json.dumps(document).encode()


def place_with(**data: Any) -> bytes:
    return raw_of({**PLACE_JSON, "data": {**PLACE_JSON["data"], **data}})


# --------------------------------------------------------------------------- round trips


def test_every_registered_type_has_examples() -> None:
    missing = [model.TYPE for model in registry if not examples(model)]

    assert missing == []


@pytest.mark.parametrize("data", ALL_EXAMPLES)
def test_decode_when_encoded_message_then_equal_envelope(data: Message) -> None:
    envelope = example_envelope(data)

    raw = encode(envelope)
    decoded = decode(raw, topic=data.TOPIC)

    assert decoded == envelope
    assert type(decoded.data) is type(data)
    assert decoded.data == data
    assert encode(decoded) == raw


@pytest.mark.parametrize("data", ALL_EXAMPLES)
def test_decode_when_model_dump_json_then_same_as_encode(data: Message) -> None:
    envelope = example_envelope(data)

    assert decode(envelope.model_dump_json().encode()) == envelope


@pytest.mark.parametrize("topic", list(Topic))
def test_decode_when_topic_given_then_each_of_its_types_accepted(topic: Topic) -> None:
    envelopes = [e for e in ALL_ENVELOPES if e.data.TOPIC is topic]

    assert envelopes, f"no example on {topic}"
    assert {type(decode(encode(e), topic=topic).data) for e in envelopes} == set(
        models_for_topic(topic)
    )


def test_encode_then_compact_utf8_json_with_string_amounts_and_ms_timestamps() -> None:
    raw = encode(PLACE)
    document = json.loads(raw)

    assert b" " not in raw.replace(b"65000.5", b"")
    assert list(document) == [
        "id",
        "type",
        "version",
        "occurred_at",
        "correlation_id",
        "causation_id",
        "user_id",
        "data",
    ]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", document["occurred_at"])
    assert document["data"]["quantity"] == "0.001"
    assert document["data"]["price"] == "65000.5"
    assert document["data"]["leverage"] == "1"
    assert document["data"]["side"] == "buy"
    assert document["data"]["time_in_force"] == "GTC"


def test_encode_when_every_example_then_no_float_and_no_exponent_anywhere() -> None:
    def walk(value: Any) -> None:
        assert not isinstance(value, float)
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, str) and re.fullmatch(r"-?[\d.]+[eE][+-]?\d+", value):
            pytest.fail(f"exponent notation in {value!r}")

    for envelope in ALL_ENVELOPES:
        walk(json.loads(encode(envelope)))


def test_decode_when_json_numbers_then_exact_decimals() -> None:
    raw = place_with(quantity=0.001, price=123456789.123456789)
    # json.dumps wrote the float's repr; write the long number by hand as well
    raw_exact = raw.replace(b"123456789.12345679", b"123456789.123456789012")

    assert decode(raw).data.quantity == Decimal("0.001")
    assert decode(raw_exact).data.price == Decimal("123456789.123456789012")


def test_decode_when_unknown_fields_anywhere_then_ignored() -> None:
    document = {**PLACE_JSON, "trace": {"deep": [1, 2]}, "data": {**PLACE_JSON["data"], "x": 1}}

    assert decode(raw_of(document)) == PLACE


def test_decode_when_str_bytearray_or_memoryview_then_same() -> None:
    raw = encode(PLACE)

    assert decode(raw.decode()) == PLACE
    assert decode(bytearray(raw)) == PLACE
    assert decode(memoryview(raw)) == PLACE


# ------------------------------------------------------------------------------ refusals


@pytest.mark.parametrize(
    ("data", "code"),
    [
        ({"quantity": "NaN"}, ReasonCode.NON_FINITE_AMOUNT),
        ({"quantity": "Infinity"}, ReasonCode.NON_FINITE_AMOUNT),
        ({"quantity": -1}, ReasonCode.NON_POSITIVE_AMOUNT),
        ({"quantity": 0}, ReasonCode.NON_POSITIVE_AMOUNT),
        ({"quantity": 1e20}, ReasonCode.AMOUNT_TOO_LARGE),
        ({"quantity": "1e-30"}, ReasonCode.AMOUNT_TOO_PRECISE),
        ({"quantity": True}, ReasonCode.INVALID_AMOUNT),
        ({"quantity": [1]}, ReasonCode.INVALID_AMOUNT),
        ({"quantity": None}, ReasonCode.INVALID_AMOUNT),
        ({"symbol": "DOGE"}, ReasonCode.INVALID_SYMBOL),
        ({"symbol": 7}, ReasonCode.INVALID_FIELD),
        ({"side": "up"}, ReasonCode.INVALID_FIELD),
        ({"client_order_id": ""}, ReasonCode.INVALID_IDENTIFIER),
    ],
)
def test_decode_when_data_field_hostile_then_invalid_message_with_code(
    data: dict[str, Any], code: ReasonCode
) -> None:
    with pytest.raises(InvalidMessage) as caught:
        decode(place_with(**data))

    assert caught.value.code is code
    assert caught.value.errors[0].loc == ("data", next(iter(data)))
    assert caught.value.errors[0].code is code


def test_decode_when_field_missing_then_missing_field_at_its_path() -> None:
    document = {**PLACE_JSON, "data": dict(PLACE_JSON["data"])}
    del document["data"]["quantity"]

    with pytest.raises(InvalidMessage) as caught:
        decode(raw_of(document))

    assert caught.value.code is ReasonCode.MISSING_FIELD
    assert [error.loc for error in caught.value.errors] == [("data", "quantity")]
    assert "data.quantity" in str(caught.value)


def test_decode_when_several_fields_wrong_then_each_reported() -> None:
    with pytest.raises(InvalidMessage) as caught:
        decode(place_with(quantity="-1", symbol="X", side=None))

    assert {error.loc for error in caught.value.errors} == {
        ("data", "quantity"),
        ("data", "symbol"),
        ("data", "side"),
    }


@pytest.mark.parametrize(
    ("changes", "loc", "code"),
    [
        ({"occurred_at": "2026-01-01T00:00:00"}, ("occurred_at",), ReasonCode.INVALID_TIMESTAMP),
        ({"occurred_at": 1767225600}, ("occurred_at",), ReasonCode.INVALID_TIMESTAMP),
        ({"id": "42"}, ("id",), ReasonCode.INVALID_FIELD),
        ({"correlation_id": None}, ("correlation_id",), ReasonCode.INVALID_FIELD),
        ({"user_id": None}, ("user_id",), ReasonCode.MISSING_FIELD),
        ({"user_id": "has space"}, ("user_id",), ReasonCode.INVALID_IDENTIFIER),
        ({"version": "1"}, ("version",), ReasonCode.INVALID_FIELD),
        ({"version": 1.0}, ("version",), ReasonCode.INVALID_FIELD),
        ({"version": True}, ("version",), ReasonCode.INVALID_FIELD),
        ({"type": 5}, ("type",), ReasonCode.INVALID_FIELD),
        ({"type": None}, ("type",), ReasonCode.MISSING_FIELD),
        ({"data": None}, ("data",), ReasonCode.INVALID_FIELD),
        ({"data": [1, 2]}, ("data",), ReasonCode.INVALID_FIELD),
    ],
)
def test_decode_when_header_wrong_then_invalid_message(
    changes: dict[str, Any], loc: tuple[str, ...], code: ReasonCode
) -> None:
    with pytest.raises(InvalidMessage) as caught:
        decode(raw_of({**PLACE_JSON, **changes}))

    assert caught.value.errors[0].loc == loc
    assert caught.value.code is code


def test_decode_when_market_message_carries_user_then_field_not_allowed() -> None:
    document = json.loads(encode(example_envelope(example(TickerUpdated))))

    with pytest.raises(InvalidMessage) as caught:
        decode(raw_of({**document, "user_id": "42"}))

    assert caught.value.code is ReasonCode.FIELD_NOT_ALLOWED


@pytest.mark.parametrize(
    ("type_", "version"), [("Nope", 1), ("PlaceOrder", 2), ("PlaceOrder", 0), ("placeorder", 1)]
)
def test_decode_when_type_not_registered_then_unknown_message_type(
    type_: str, version: int
) -> None:
    with pytest.raises(UnknownMessageType) as caught:
        decode(raw_of({**PLACE_JSON, "type": type_, "version": version}))

    assert caught.value.code is ReasonCode.UNKNOWN_MESSAGE_TYPE
    assert (caught.value.type, caught.value.version) == (type_, version)


def test_decode_when_type_belongs_to_another_topic_then_wrong_topic() -> None:
    with pytest.raises(WrongTopic) as caught:
        decode(encode(PLACE), topic="orders.events")

    assert caught.value.code is ReasonCode.WRONG_TOPIC
    assert caught.value.expected == "orders.commands"
    assert caught.value.topic == "orders.events"


def test_decode_when_topic_unknown_then_wrong_topic() -> None:
    with pytest.raises(WrongTopic) as caught:
        decode(encode(PLACE), topic="orders.commands.dlq")

    assert caught.value.expected is None


def test_decode_when_larger_than_limit_then_too_large_before_parsing() -> None:
    raw = b"{" * (MAX_MESSAGE_SIZE + 1)  # would be malformed if it were parsed

    with pytest.raises(MessageTooLarge) as caught:
        decode(raw)

    assert caught.value.code is ReasonCode.MESSAGE_TOO_LARGE
    assert (caught.value.size, caught.value.limit) == (MAX_MESSAGE_SIZE + 1, MAX_MESSAGE_SIZE)


def test_decode_when_limit_configured_then_applied() -> None:
    raw = encode(PLACE)

    assert decode(raw, max_size=len(raw)) == PLACE
    with pytest.raises(MessageTooLarge):
        decode(raw, max_size=len(raw) - 1)


def test_decode_when_padding_makes_message_oversized_then_too_large() -> None:
    document = {**PLACE_JSON, "padding": "x" * MAX_MESSAGE_SIZE}

    with pytest.raises(MessageTooLarge):
        decode(raw_of(document))


def test_encode_when_larger_than_limit_then_too_large() -> None:
    with pytest.raises(MessageTooLarge):
        encode(PLACE, max_size=100)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"   ",
        b"{",
        b'{"type": "PlaceOrder",}',
        b"\xff\xfe{}",
        b"\xef\xbb\xbf{}",  # a UTF-8 byte order mark
        '{"a": "é"}'.encode("latin-1"),
        '{"a": 1}'.encode("utf-16"),
        b'{"quantity": NaN}',
        b'{"quantity": Infinity}',
        b'{"quantity": -Infinity}',
        b"[" * 50_000,
        b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
        b"1" * 5_000,  # more digits than int() reads
        b'{"x": 1e999999999999999999999}',  # beyond Decimal's exponent range
        b"{} {}",
    ],
)
def test_decode_when_not_json_then_malformed_json(raw: bytes) -> None:
    with pytest.raises(MalformedJson) as caught:
        decode(raw)

    assert caught.value.code is ReasonCode.MALFORMED_JSON


@pytest.mark.parametrize("raw", [b"null", b"[]", b'"PlaceOrder"', b"42", b"{}"])
def test_decode_when_json_but_not_an_envelope_then_invalid_message(raw: bytes) -> None:
    with pytest.raises(InvalidMessage):
        decode(raw)


def test_decode_with_own_registry_then_only_its_types() -> None:
    own = Registry()
    own.register(TickerUpdated)
    ticker = example_envelope(example(TickerUpdated))

    assert decode(encode(ticker), registry=own) == ticker
    with pytest.raises(UnknownMessageType):
        decode(encode(PLACE), registry=own)


def test_errors_are_one_hierarchy() -> None:
    for error in (MessageTooLarge, MalformedJson, UnknownMessageType, WrongTopic, InvalidMessage):
        assert issubclass(error, ContractError)


# ---------------------------------------------------------------- hostile input, fuzzed

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()  # NaN and infinities included: json.dumps writes them as literals
    | st.text(max_size=20)
    | st.sampled_from(["NaN", "-1", "0", "1e20", "1e-30", "BTCUSDT", "2026-01-01T00:00:00Z"])
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=25,
)
registered = st.sampled_from(list(registry))


def decodes_or_refuses(raw: bytes | str, **kwargs: Any) -> Envelope[Any] | ContractError:
    """decode's whole promise: an envelope, or a ContractError; nothing else escapes."""
    refusal: ContractError | None = None
    try:
        envelope = decode(raw, **kwargs)
    except ContractError as error:
        refusal = error
    if refusal is not None:
        assert isinstance(refusal.code, ReasonCode)
        assert str(refusal)
        return refusal
    assert isinstance(envelope, Envelope)
    assert isinstance(envelope.data, Message)
    assert decode(encode(envelope)) == envelope  # whatever was accepted re-encodes
    return envelope


# Timing is not under test here, and the first decode of a type builds its validator.
fuzz = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


@fuzz
@given(st.binary(max_size=2000))
def test_decode_when_arbitrary_bytes_then_envelope_or_contract_error(raw: bytes) -> None:
    decodes_or_refuses(raw)


@fuzz
@given(st.text(max_size=500))
def test_decode_when_arbitrary_text_then_envelope_or_contract_error(raw: str) -> None:
    decodes_or_refuses(raw)


@fuzz
@given(json_values)
def test_decode_when_arbitrary_json_then_envelope_or_contract_error(value: Any) -> None:
    result = decodes_or_refuses(json.dumps(value))

    assert isinstance(result, ContractError)


@fuzz
@given(model=registered, data=st.dictionaries(st.text(max_size=16), json_values, max_size=8))
def test_decode_when_registered_type_with_arbitrary_data_then_envelope_or_contract_error(
    model: type[Message], data: dict[str, Any]
) -> None:
    document = {**PLACE_JSON, "type": model.TYPE, "version": model.VERSION, "data": data}

    decodes_or_refuses(json.dumps(document), topic=model.TOPIC)


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += paths(item, (*prefix, index))
    return found


def mutate(document: Any, path: tuple[Any, ...], action: str, value: Any) -> Any:
    if not path:
        return value if action == "replace" else document
    head, rest = path[0], path[1:]
    copy: Any = dict(document) if isinstance(document, dict) else list(document)
    if not rest and action == "delete":
        del copy[head]
    elif not rest and action == "add" and isinstance(copy, dict):
        copy[f"{head}_extra"] = value
    else:
        copy[head] = mutate(copy[head], rest, action, value)
    return copy


@fuzz
@given(
    envelope=st.sampled_from(ALL_ENVELOPES),
    picks=st.lists(
        st.tuples(
            st.integers(min_value=0), st.sampled_from(["replace", "delete", "add"]), json_values
        ),
        min_size=1,
        max_size=3,
    ),
)
def test_decode_when_valid_message_mutated_then_envelope_or_contract_error(
    envelope: Envelope[Any], picks: list[tuple[int, str, Any]]
) -> None:
    document: Any = json.loads(encode(envelope))
    for index, action, value in picks:
        candidates = paths(document)
        document = mutate(document, candidates[index % len(candidates)], action, value)

    decodes_or_refuses(json.dumps(document), topic=envelope.topic)


@fuzz
@given(
    envelope=st.sampled_from(ALL_ENVELOPES),
    position=st.integers(min_value=0),
    replacement=st.binary(max_size=8),
    cut=st.booleans(),
)
def test_decode_when_bytes_of_valid_message_corrupted_then_envelope_or_contract_error(
    envelope: Envelope[Any], position: int, replacement: bytes, cut: bool
) -> None:
    raw = encode(envelope)
    at = position % len(raw)
    corrupted = raw[:at] if cut else raw[:at] + replacement + raw[at + len(replacement) :]

    decodes_or_refuses(corrupted)


@fuzz
@given(
    quantity=st.decimals(
        min_value=Decimal("0.000000000000000001"),
        max_value=Decimal("999999999999999"),
        places=18,
    ),
    price=st.one_of(
        st.floats(min_value=0.1, max_value=1e14),  # repr() has <= 17 decimals here
        st.integers(min_value=1, max_value=10**14),
    ),
    leverage=st.integers(min_value=1, max_value=1000),
    symbol=st.sampled_from(["BTCUSDT", "btc_usdt", "ETH-BTC", "sol/usdc"]),
    user_id=st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1),
)
def test_place_order_round_trip_when_any_valid_values_then_exact(
    quantity: Decimal, price: float | int, leverage: int, symbol: str, user_id: str
) -> None:
    order = PlaceOrder(
        client_order_id="c-1",
        symbol=symbol,
        side="buy",
        type="limit",
        quantity=quantity,
        price=price,
        leverage=leverage,
    )
    envelope = new_message(order, user_id=user_id[:64])

    decoded = decode(encode(envelope), topic=Topic.ORDERS_COMMANDS)

    assert decoded == envelope
    assert decoded.data.quantity == quantity
    assert decoded.data.price == (Decimal(repr(price)) if isinstance(price, float) else price)
