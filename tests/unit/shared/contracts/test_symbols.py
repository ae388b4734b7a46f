"""Symbol normalisation (shared/contracts/_symbols.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from shared.contracts import QUOTE_ASSETS, Symbol, normalize_symbol, split_symbol

SYMBOL = TypeAdapter(Symbol)


@pytest.mark.parametrize(
    ("given_symbol", "canonical"),
    [
        ("BTCUSDT", "BTC_USDT"),
        ("btcusdt", "BTC_USDT"),
        ("BTC_USDT", "BTC_USDT"),
        ("btc_usdt", "BTC_USDT"),
        ("BTC-USDT", "BTC_USDT"),
        ("BTC/USDT", "BTC_USDT"),
        ("ETHBTC", "ETH_BTC"),
        ("USDTIRT", "USDT_IRT"),
        ("BTCTUSD", "BTC_TUSD"),  # longest quote wins over USD
        ("BTCBUSD", "BTC_BUSD"),
        ("BTCUSD", "BTC_USD"),
        ("ETHEUR", "ETH_EUR"),
        ("SOLUSDC", "SOL_USDC"),
        ("MKRDAI", "MKR_DAI"),
        ("1INCHUSDT", "1INCH_USDT"),
        ("XX_YY", "XX_YY"),  # explicit separator: any assets of 2..10
        ("ABCDEFGHIJ_USDT", "ABCDEFGHIJ_USDT"),
    ],
)
def test_normalize_when_accepted_spelling_then_canonical(given_symbol: str, canonical: str) -> None:
    assert normalize_symbol(given_symbol) == canonical
    assert SYMBOL.validate_python(given_symbol) == canonical


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "BTC",
        "USDT",  # a quote alone: base would be empty
        "BUSDT",  # base of one character
        "BTCXYZ",  # no known quote at the end
        "BTC_",
        "_USDT",
        "B_USDT",
        "BTC__USDT",
        "BTC_USDT_X",
        "BTC USDT",
        " BTCUSDT",
        "BTC.USDT",
        "ABCDEFGHIJK_USDT",  # base of 11
        "ABCDEFGHIJKUSDT",
        "BTCÜSDT",
        "\uff22\uff34\uff23\uff35\uff33\uff24\uff34",  # full-width BTCUSDT
        "BTCUSDT" * 100,
    ],
)
def test_normalize_when_not_a_symbol_then_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="is not a symbol"):
        normalize_symbol(bad)
    with pytest.raises(ValidationError) as caught:
        SYMBOL.validate_python(bad)
    assert caught.value.errors()[0]["type"] == "invalid_symbol"


@pytest.mark.parametrize("bad", [None, 42, b"BTCUSDT", ["BTC", "USDT"]])
def test_validate_when_not_a_string_then_string_type(bad: object) -> None:
    with pytest.raises(ValidationError) as caught:
        SYMBOL.validate_python(bad)
    assert caught.value.errors()[0]["type"] == "string_type"


def test_split_when_any_spelling_then_base_and_quote() -> None:
    assert split_symbol("ethbtc") == ("ETH", "BTC")
    assert split_symbol("BTC_USDT") == ("BTC", "USDT")


assets = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=2, max_size=10)


@given(base=assets, quote=assets, separator=st.sampled_from("_-/"), lower=st.booleans())
def test_normalize_when_separated_then_canonical_and_idempotent(
    base: str, quote: str, separator: str, lower: bool
) -> None:
    text = f"{base}{separator}{quote}"
    canonical = normalize_symbol(text.lower() if lower else text)

    assert canonical == f"{base}_{quote}"
    assert normalize_symbol(canonical) == canonical


@given(base=assets, quote=st.sampled_from(QUOTE_ASSETS))
def test_normalize_when_joined_with_known_quote_then_split_at_a_known_quote(
    base: str, quote: str
) -> None:
    canonical = normalize_symbol(base + quote)
    found_base, found_quote = canonical.split("_")

    assert found_base + found_quote == base + quote
    assert found_quote in QUOTE_ASSETS
    assert len(found_quote) >= len(quote)  # the longest known quote at the end wins


@given(st.text(max_size=30))
def test_normalize_when_any_text_then_canonical_or_value_error(text: str) -> None:
    try:
        canonical = normalize_symbol(text)
    except ValueError:
        return
    base, quote = canonical.split("_")
    assert 2 <= len(base) <= 10
    assert 2 <= len(quote) <= 10
    assert canonical == canonical.upper()
