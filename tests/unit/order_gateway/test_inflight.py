"""In-flight resolution: listed -> claim; young -> wait; then ask OPEX; never resend."""

from __future__ import annotations

import pytest

from services.order_gateway.config import GatewayConfig
from services.order_gateway.domain import (
    Claim,
    GiveUp,
    QueryWindow,
    WaitForListing,
    resolve,
)
from shared.contracts import RejectReason
from tests.unit.order_gateway.factories import T0, accepted_order, listed, sent_order

CONFIG = GatewayConfig(listing_grace_ms=2_000, query_interval_ms=5_000, failed_after_ms=60_000)


def test_resolve_when_listed_then_claim() -> None:
    found = listed()
    assert resolve(sent_order(), found, now_ms=T0 + 1, config=CONFIG) == Claim(found)


def test_resolve_when_younger_than_grace_then_wait() -> None:
    assert resolve(sent_order(), None, now_ms=T0 + 500, config=CONFIG) == WaitForListing(T0 + 2_000)


def test_resolve_when_grace_passed_then_targeted_query() -> None:
    decision = resolve(sent_order(), None, now_ms=T0 + 2_500, config=CONFIG)
    assert decision == QueryWindow("BTC_USDT", T0 - CONFIG.clock_skew_ms, T0 + 2_500)


def test_resolve_when_queried_recently_then_wait_for_interval() -> None:
    decision = resolve(
        sent_order(), None, now_ms=T0 + 4_000, config=CONFIG, last_query_at_ms=T0 + 2_500
    )
    assert decision == WaitForListing(T0 + 7_500)


def test_resolve_when_deadline_passed_without_a_late_query_then_query_first() -> None:
    decision = resolve(
        sent_order(), None, now_ms=T0 + 60_000, config=CONFIG, last_query_at_ms=T0 + 59_000
    )
    assert isinstance(decision, QueryWindow)


def test_resolve_when_query_after_deadline_found_nothing_then_failed_not_acknowledged() -> None:
    decision = resolve(
        sent_order(), None, now_ms=T0 + 60_100, config=CONFIG, last_query_at_ms=T0 + 60_000
    )
    assert isinstance(decision, GiveUp)
    assert decision.reason_code is RejectReason.NOT_ACKNOWLEDGED


def test_resolve_when_not_in_flight_then_value_error() -> None:
    with pytest.raises(ValueError, match="not in flight"):
        resolve(accepted_order(), None, now_ms=T0, config=CONFIG)
