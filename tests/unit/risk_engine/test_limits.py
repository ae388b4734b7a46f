"""Limits in force: global, per user, changed at run time."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.risk_engine.config import LimitOverrides, RiskLimits
from services.risk_engine.domain import Limits

D = Decimal


def test_for_user_when_no_overrides_then_the_global_limits() -> None:
    limits = Limits(RiskLimits(max_daily_loss=D(5)))

    assert limits.for_user("42") is limits.global_limits


def test_for_user_when_overridden_then_merged_over_the_global() -> None:
    limits = Limits(overrides={"42": LimitOverrides(max_daily_loss=D(5))})

    assert limits.for_user("42").max_daily_loss == D(5)
    assert limits.for_user("7").max_daily_loss == D(10_000)


def test_set_global_when_changed_then_users_see_it_with_their_overrides() -> None:
    limits = Limits()
    limits.set_user("42", LimitOverrides(max_daily_loss=D(5)))
    limits.for_user("42")

    limits.set_global(RiskLimits(max_open_orders=3))

    assert limits.for_user("42").max_open_orders == 3
    assert limits.for_user("42").max_daily_loss == D(5)


def test_set_user_when_cleared_then_global_again() -> None:
    limits = Limits()
    limits.set_user("42", LimitOverrides(max_open_orders=1))
    assert limits.for_user("42").max_open_orders == 1

    limits.set_user("42", None)

    assert limits.overrides("42") is None
    assert limits.for_user("42").max_open_orders == RiskLimits().max_open_orders


def test_set_user_when_out_of_range_then_refused_and_unchanged() -> None:
    limits = Limits()

    with pytest.raises(ValueError, match="min_margin_ratio"):
        limits.set_user("42", LimitOverrides(min_margin_ratio=D(2)))

    assert limits.overrides("42") is None
