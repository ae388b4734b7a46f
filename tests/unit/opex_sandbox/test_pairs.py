from __future__ import annotations

from decimal import Decimal

import pytest

from services.opex_sandbox.domain import OrderType, Pair, PairRegistry
from services.opex_sandbox.domain.errors import InvalidRequestParam, PairIsExist, SymbolNotFound

D = Decimal


def test_with_defaults_when_created_then_btc_and_eth_usdt_available() -> None:
    reg = PairRegistry.with_defaults()
    assert reg.symbols() == ["BTC_USDT", "ETH_USDT"]
    btc = reg.get("BTC_USDT")
    assert (btc.base, btc.quote, btc.price_step, btc.quantity_step) == (
        "BTC",
        "USDT",
        D("0.01"),
        D("0.000001"),
    )
    assert (btc.min_order, btc.max_order, btc.is_available) == (D(10), D(1_000_000), True)
    assert (btc.maker_fee, btc.taker_fee) == (D("0.001"), D("0.002"))
    assert btc.order_types == {OrderType.LIMIT, OrderType.MARKET}
    assert reg.get("ETH_USDT").quantity_step == D("0.0001")
    assert reg.currencies() == {"BTC", "ETH", "USDT"}


def test_resolve_alias_when_binance_symbol_then_native() -> None:
    reg = PairRegistry.with_defaults()
    assert reg.resolve_alias("BTCUSDT") == "BTC_USDT"
    assert reg.alias_of("ETH_USDT") == "ETHUSDT"
    assert reg.aliases == {"BTCUSDT": "BTC_USDT", "ETHUSDT": "ETH_USDT"}


def test_resolve_alias_when_unknown_then_7002_not_found() -> None:
    with pytest.raises(SymbolNotFound) as exc:
        PairRegistry.with_defaults().resolve_alias("DOGEUSDT")
    assert (exc.value.code, exc.value.http_status) == (7002, 404)


def test_get_when_unknown_symbol_then_7002() -> None:
    reg = PairRegistry.with_defaults()
    with pytest.raises(SymbolNotFound):
        reg.get("BTCUSDT")
    assert reg.find("BTCUSDT") is None


def test_add_when_new_pair_then_unavailable_with_min_max_one_and_alias() -> None:
    reg = PairRegistry.with_defaults()
    pair = reg.add("SOL_USDT", D("0.001"), D("0.01"))
    assert (pair.is_available, pair.min_order, pair.max_order) == (False, D(1), D(1))
    assert reg.resolve_alias("SOLUSDT") == "SOL_USDT"
    assert "SOL_USDT" in reg
    assert len(reg) == 3


def test_add_when_symbol_exists_then_pair_is_exist() -> None:
    with pytest.raises(PairIsExist):
        PairRegistry.with_defaults().add("BTC_USDT", D(1), D(1))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"price_step": D(0)},
        {"quantity_step": D(-1)},
        {"min_order": D(5), "max_order": D(1)},
        {"maker_fee": D(1)},
        {"taker_fee": D(-0.1)},
        {"order_types": {OrderType.STOP_LOSS}},
    ],
)
def test_configure_when_setting_invalid_then_1020(kwargs: dict[str, object]) -> None:
    reg = PairRegistry.with_defaults()
    with pytest.raises(InvalidRequestParam):
        reg.configure("BTC_USDT", **kwargs)  # type: ignore[arg-type]
    assert reg.get("BTC_USDT").is_available


def test_configure_when_given_settings_then_others_kept() -> None:
    reg = PairRegistry.with_defaults()
    before = reg.get("BTC_USDT")
    after = reg.configure("BTC_USDT", is_available=False, order_types=[OrderType.LIMIT])
    assert after.is_available is False
    assert after.order_types == {OrderType.LIMIT}
    assert (after.price_step, after.min_order, after.taker_fee) == (
        before.price_step,
        before.min_order,
        before.taker_fee,
    )
    assert reg.get("BTC_USDT") is after


def test_add_when_symbol_has_no_underscore_then_1020() -> None:
    with pytest.raises(InvalidRequestParam):
        PairRegistry().add("BTCUSDT", D(1), D(1))


def test_pair_when_symbol_does_not_match_assets_then_1020() -> None:
    with pytest.raises(InvalidRequestParam):
        Pair("BTC_USDT", "ETH", "USDT", D(1), D(1))


def test_add_when_steps_and_fees_exceed_decimal_budget_then_1020() -> None:
    reg = PairRegistry()
    with pytest.raises(InvalidRequestParam):
        reg.add("X_Y", D("0.00000001"), D("0.00000001"))  # 8 + 8 + 3 > 13
    assert reg.add("X_Y", D("0.000001"), D("0.0001")).symbol == "X_Y"
