"""The codec's fast JSON parse and `trusted` construction give exactly what the
reference paths give (shared/contracts/_codec.py, shared/contracts/_construct.py)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.contracts import (
    ContractError,
    Envelope,
    Message,
    OrderApproved,
    PlaceOrder,
    Reservation,
    encode,
    new_message,
    registry,
    trusted,
)
from shared.contracts._codec import _parse, _parse_fast
from shared.contracts.testing import example, examples

fuzz = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


def outcome(parse: Any, raw: bytes | bytearray | memoryview | str) -> tuple[str, Any]:
    try:
        return "ok", parse(raw)
    except ContractError as error:
        return type(error).__name__, (error.code, str(error))


def same_parse(raw: bytes | bytearray | memoryview | str) -> None:
    fast, reference = outcome(_parse_fast, raw), outcome(_parse, raw)
    assert fast == reference
    if fast[0] == "ok":  # equal and of the same types: 1 is not 1.0, nor Decimal("1")
        assert repr(fast[1]) == repr(reference[1])


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats()
    | st.decimals(allow_nan=False, allow_infinity=False).map(lambda d: float(d))
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=25,
)


@fuzz
@given(json_values)
def test_parse_fast_when_any_json_then_same_as_reference(value: Any) -> None:
    text = json.dumps(value)  # NaN and Infinity included: both must refuse them
    same_parse(text)
    same_parse(text.encode("utf-8", "surrogatepass"))


@fuzz
@given(st.binary(max_size=300))
def test_parse_fast_when_any_bytes_then_same_as_reference(raw: bytes) -> None:
    same_parse(raw)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a":0.1000000000000000055511151231257827}',
        b'{"a":1E5}',
        b'{"a":1e400}',
        b'{"a":-0.0}',
        b'{"a":[{"b":[1.5]}]}',
        b'{"a":999999999999999999999999999999}',
        b'{"a":-9223372036854775809}',
        b'{"a":"\\ud800"}',
        b'{"a":1,"a":2}',
        b"[" * 3000 + b"]" * 3000,
        b'{"a":' + b"9" * 5000 + b"}",
        b'\xef\xbb\xbf{"a":1}',
        b'{"a":NaN}',
        b'{"a":"\xff"}',
        b" {} ",
    ],
)
def test_parse_fast_when_json_the_fast_parser_reads_differently_then_same(raw: bytes) -> None:
    same_parse(raw)
    same_parse(memoryview(raw))
    same_parse(bytearray(raw))


@pytest.mark.parametrize("raw", ['{"a":"\ud800"}', '{"a":1}\udfff', '"\udc80"'])
def test_parse_fast_when_text_holds_lone_surrogates_then_same(raw: str) -> None:
    same_parse(raw)


@fuzz
@given(st.text(max_size=200))
def test_parse_fast_when_any_text_then_same_as_reference(raw: str) -> None:
    same_parse(raw)
    same_parse('{"a":"' + raw.replace("\\", "").replace('"', "") + '"}')


def test_parse_fast_when_a_float_then_exact_decimal() -> None:
    assert _parse_fast(b'{"q":0.1000000000000000055511151231257827}') == {
        "q": Decimal("0.1000000000000000055511151231257827")
    }


@pytest.mark.parametrize("model", list(registry), ids=lambda m: m.TYPE)
def test_trusted_when_valid_values_then_same_as_model_construct(model: type[Message]) -> None:
    for data in examples(model):
        values = {name: getattr(data, name) for name in data.model_fields_set}
        ours, theirs = trusted(model, values), model.model_construct(**values)
        assert ours == theirs == data
        assert ours.model_fields_set == theirs.model_fields_set
        assert ours.__dict__ == theirs.__dict__
        assert list(ours.__dict__) == list(theirs.__dict__)


def test_trusted_when_envelope_then_same_bytes_as_validated_one() -> None:
    data = OrderApproved(
        command=example(PlaceOrder), reservation=Reservation(asset="USDT", amount=Decimal(5))
    )
    envelope = new_message(data, user_id="42")
    built: Envelope[Any] = trusted(Envelope, dict(envelope))
    assert built == envelope
    assert encode(built) == encode(envelope)
    assert built.model_fields_set == envelope.model_fields_set


def amount_outcome(parse: Any, value: object) -> tuple[str, Any]:
    try:
        number = parse(value)
    except ValueError as error:
        return "refused", str(error)
    return "ok", (number.as_tuple(), str(number), format(number, "f"))


amount_texts = (
    st.decimals(allow_nan=False, allow_infinity=False).map(str)
    | st.decimals(allow_nan=False, allow_infinity=False).map(lambda d: format(d, "f"))
    | st.integers(min_value=-(10**17), max_value=10**17).map(str)
    | st.text(alphabet="-0123456789.eE+ _", max_size=40)
)


@fuzz
@given(amount_texts)
def test_parse_amount_when_any_text_then_same_as_the_general_path(text: str) -> None:
    from shared.contracts._types import _parse_any_amount, parse_amount

    assert amount_outcome(parse_amount, text) == amount_outcome(_parse_any_amount, text)


@pytest.mark.parametrize(
    "text",
    [
        "0",
        "-0",
        "0.001",
        "-0.5",
        "50000",
        "999999999999999",
        "1000000000000000",
        "0.000000000000000001",
        "0.0000000000000000001",
        "1.50",
        "007",
        "1.",
        ".5",
        "1e3",
        "\u0661",  # an Arabic-Indic digit: Decimal reads it, the contract does not
    ],
)
def test_parse_amount_when_edge_text_then_same_as_the_general_path(text: str) -> None:
    from shared.contracts._types import _parse_any_amount, parse_amount

    assert amount_outcome(parse_amount, text) == amount_outcome(_parse_any_amount, text)


def test_trusted_when_a_default_is_mutable_then_copied_as_model_construct_does() -> None:
    from pydantic import BaseModel, ConfigDict

    class Holder(BaseModel):
        model_config = ConfigDict(frozen=True)
        items: list[int] = []
        name: str = "x"

    first, second = trusted(Holder, {}), trusted(Holder, {"name": "y"})
    assert first == Holder.model_construct()
    assert first.items is not second.items
    assert second.model_fields_set == {"name"}
