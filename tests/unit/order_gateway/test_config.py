"""The gateway's configuration: defaults, ranges, environment."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.order_gateway.config import (
    MAX_MARKET_COLLAR_PCT,
    GatewayConfig,
    GatewaySettings,
    Surface,
)


def test_defaults_when_built_then_v3_unlimited_and_opex_ten_per_minute() -> None:
    config = GatewayConfig()
    assert config.max_requests(Surface.V3) is None
    assert config.max_requests(Surface.OPEX) == 10
    assert config.rate_window_ms == 60_000
    assert config.market_collar_pct <= MAX_MARKET_COLLAR_PCT


@pytest.mark.parametrize(
    "changes",
    [
        {"market_collar_pct": Decimal("0.06")},
        {"market_collar_pct": Decimal(0)},
        {"failed_after_ms": 0},
        {"listing_grace_ms": 70_000},
        {"correlation_window_ms": 1_000},
        {"opex_max_requests": 0},
        {"rate_limit_blocks_s": ()},
        {"clock_skew_ms": -1},
    ],
)
def test_config_when_out_of_range_then_value_error(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="must"):
        GatewayConfig(**changes)  # type: ignore[arg-type]


def test_settings_when_environment_set_then_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDER_GATEWAY_FAILED_AFTER_MS", "90000")
    monkeypatch.setenv("ORDER_GATEWAY_CORRELATION_WINDOW_MS", "95000")
    monkeypatch.setenv("ORDER_GATEWAY_ORDER_SURFACE", "opex")
    config = GatewaySettings(_env_file=None).config()
    assert config.failed_after_ms == 90_000
    assert config.order_surface is Surface.OPEX
