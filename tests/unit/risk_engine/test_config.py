"""The limits' defaults, ranges and the environment they are read from."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.risk_engine.config import LimitOverrides, RiskLimits, RiskSettings

D = Decimal


def test_limits_when_nothing_configured_then_the_seed_defaults() -> None:
    limits = RiskSettings(_env_file=None).limits()

    assert limits == RiskLimits()
    assert (
        limits.max_position_size,
        limits.max_daily_loss,
        limits.min_margin_ratio,
        limits.max_leverage,
    ) == (D(1_000_000), D(10_000), D("0.1"), D(100))


def test_settings_when_platform_names_set_then_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_POSITION_SIZE", "500000")
    monkeypatch.setenv("MAX_DAILY_LOSS", "2500.5")
    monkeypatch.setenv("MIN_MARGIN_RATIO", "0.2")
    monkeypatch.setenv("MAX_LEVERAGE", "20")
    monkeypatch.setenv("RISK_PRICE_COLLAR_PCT", "0.03")
    monkeypatch.setenv("RISK_MAX_OPEN_ORDERS", "50")

    limits = RiskSettings(_env_file=None).limits()

    assert limits.max_position_size == D(500_000)
    assert limits.max_daily_loss == D("2500.5")
    assert limits.min_margin_ratio == D("0.2")
    assert limits.max_leverage == D(20)
    assert limits.price_collar_pct == D("0.03")
    assert limits.max_open_orders == 50


def test_settings_when_risk_prefixed_platform_name_set_then_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RISK_MAX_LEVERAGE", "10")

    assert RiskSettings(_env_file=None).limits().max_leverage == D(10)


def test_settings_when_value_out_of_range_then_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIN_MARGIN_RATIO", "1.5")

    with pytest.raises(ValueError, match="min_margin_ratio"):
        RiskSettings(_env_file=None).limits()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("max_position_size", D(0)),
        ("max_daily_loss", D(-1)),
        ("max_leverage", D("0.5")),
        ("price_collar_pct", D(1)),
        ("reference_price_max_age_ms", 0),
        ("max_open_orders", 0),
        ("max_order_notional", D("NaN")),
    ],
)
def test_limits_when_out_of_range_then_value_error(name: str, value: object) -> None:
    with pytest.raises(ValueError, match=name):
        RiskLimits(**{name: value})  # type: ignore[arg-type]


def test_limits_derive_the_reservation_factors() -> None:
    limits = RiskLimits(fee_allowance_rate=D("0.001"), market_collar_pct=D("0.02"))

    assert (limits.buy_fee_factor, limits.market_buy_factor) == (D("1.001"), D("1.02"))


def test_overrides_when_applied_then_only_their_fields_change() -> None:
    base = RiskLimits()

    merged = LimitOverrides(max_daily_loss=D(500), max_open_orders=5).apply(base)

    assert (merged.max_daily_loss, merged.max_open_orders) == (D(500), 5)
    assert merged.max_position_size == base.max_position_size
    assert LimitOverrides().apply(base) is base


def test_overrides_when_out_of_range_then_value_error() -> None:
    with pytest.raises(ValueError, match="max_leverage"):
        LimitOverrides(max_leverage=D(0)).apply(RiskLimits())
