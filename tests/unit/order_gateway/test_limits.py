"""Per-user pacing: OPEX's 10 per 60 s, off on /v3, 429 blocks escalating."""

from __future__ import annotations

from services.order_gateway.config import GatewayConfig, Surface
from services.order_gateway.domain import RateLimitBackoff, RequestLimiter, UserThrottle

T0 = 1_000_000


def test_try_acquire_when_ten_in_window_then_eleventh_waits_for_the_oldest() -> None:
    limiter = RequestLimiter(10, 60_000)
    for i in range(10):
        assert limiter.try_acquire("u", T0 + i * 1_000) == 0
    assert limiter.try_acquire("u", T0 + 10_000) == 50_000
    assert limiter.try_acquire("u", T0 + 60_000) == 0


def test_try_acquire_when_other_user_waits_then_this_one_goes() -> None:
    limiter = RequestLimiter(1, 60_000)
    assert limiter.try_acquire("a", T0) == 0
    assert limiter.try_acquire("a", T0) > 0
    assert limiter.try_acquire("b", T0) == 0


def test_try_acquire_when_off_then_never_waits() -> None:
    limiter = RequestLimiter(None, 60_000)
    assert not limiter.enabled
    assert all(limiter.try_acquire("u", T0) == 0 for _ in range(100))


def test_on_rate_limited_when_repeated_then_blocks_escalate_and_reset_on_success() -> None:
    backoff = RateLimitBackoff((60, 120, 180))
    assert backoff.on_rate_limited("u", T0, None) == T0 + 60_000
    assert backoff.on_rate_limited("u", T0, None) == T0 + 120_000
    assert backoff.on_rate_limited("u", T0, None) == T0 + 180_000
    assert backoff.on_rate_limited("u", T0, None) == T0 + 180_000
    assert backoff.delay_ms("u", T0 + 100_000) == 80_000
    assert backoff.delay_ms("other", T0) == 0
    backoff.on_success("u")
    assert backoff.strikes("u") == 0
    assert backoff.delay_ms("u", T0 + 180_000) == 0


def test_on_rate_limited_when_retry_after_longer_then_as_told() -> None:
    backoff = RateLimitBackoff((60,))
    assert backoff.on_rate_limited("u", T0, 90) == T0 + 90_000


def test_throttle_when_default_config_then_v3_free_and_opex_limited() -> None:
    throttle = UserThrottle(GatewayConfig())
    assert all(throttle.try_acquire(Surface.V3, "u", T0) == 0 for _ in range(50))
    assert all(throttle.try_acquire(Surface.OPEX, "u", T0) == 0 for _ in range(10))
    assert throttle.try_acquire(Surface.OPEX, "u", T0) == 60_000
    throttle.on_rate_limited(Surface.V3, "u", T0, None)
    assert throttle.try_acquire(Surface.V3, "u", T0 + 1_000) == 59_000
    throttle.on_success(Surface.V3, "u")
    assert throttle.backoffs[Surface.V3].strikes("u") == 0


def test_restamp_when_request_left_late_then_slot_counts_from_then() -> None:
    limiter = RequestLimiter(2, 1_000)
    assert limiter.try_acquire("u", 0) == 0
    assert limiter.try_acquire("u", 0) == 0
    assert limiter.delay_ms("u", 500) == 500
    limiter.restamp("u", 0, 400)  # one request ended at 400: its slot frees at 1400
    assert limiter.delay_ms("u", 999) == 1  # the other slot still frees at 1000
    assert limiter.try_acquire("u", 1_000) == 0
    assert limiter.delay_ms("u", 1_000) == 400  # now full until the restamped slot frees
    limiter.restamp("u", 12_345, 20_000)  # unknown (pruned) slot: nothing changes
    limiter.restamp("nobody", 0, 5)
    assert limiter.delay_ms("u", 1_400) == 0
