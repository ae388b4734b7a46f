"""OPEX's JSON as the sandbox writes it."""

from __future__ import annotations

import json
from decimal import Decimal

from services.opex_sandbox.render import dumps


def test_dumps_when_decimals_then_plain_json_numbers() -> None:
    text = dumps({"p": Decimal("30000.10"), "q": Decimal("1E+2"), "s": "x\u0000y", "n": None})
    assert text == b'{"p":30000.10,"q":100,"s":"x\\u0000y","n":null}'
    assert json.loads(text, parse_float=Decimal)["p"] == Decimal("30000.10")


def test_dumps_when_tiny_or_negative_decimals_then_no_exponent() -> None:
    text = dumps([Decimal("0.00000001"), Decimal("-2.5"), Decimal(0)])
    assert text == b"[0.00000001,-2.5,0]"


def test_dumps_when_string_starts_with_nul_then_still_a_string() -> None:
    assert json.loads(dumps({"label": "\u0000123"})) == {"label": "\u0000123"}


def test_dumps_when_orjson_cannot_then_json_writes_the_same_way() -> None:
    big = 2**70  # past orjson's 64-bit integers
    assert dumps({"n": big, "p": Decimal("1.50")}) == b'{"n":%d,"p":1.50}' % big


def test_dumps_when_non_ascii_then_utf8_as_before() -> None:
    assert dumps({"m": "é ü"}) == '{"m":"é ü"}'.encode()
