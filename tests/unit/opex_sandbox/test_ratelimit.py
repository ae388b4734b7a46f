"""OPEX's per-user rate limits, on an injected clock."""

from __future__ import annotations

from services.opex_sandbox.ratelimit import RateLimiter, default_rules


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limiter(**kwargs: object) -> tuple[RateLimiter, Clock]:
    clock = Clock()
    return RateLimiter(default_rules(**kwargs), clock=clock), clock  # type: ignore[arg-type]


def burst(
    rl: RateLimiter, n: int, *, user: str = "u", method: str = "POST", path: str = "/opex/v1/order"
) -> list[bool]:
    return [rl.check(user, method, path).allowed for _ in range(n)]


def test_check_when_ten_in_a_minute_then_eleventh_refused() -> None:
    rl, _ = limiter()
    assert burst(rl, 10) == [True] * 10
    refused = rl.check("u", "POST", "/opex/v1/order")
    assert not refused.allowed
    assert refused.retry_after_s == 60


def test_check_when_blocked_then_refused_until_the_block_ends_even_with_tokens() -> None:
    rl, clock = limiter()
    burst(rl, 11)
    clock.now += 59.9  # the bucket has refilled almost entirely, the block holds
    assert not rl.check("u", "POST", "/opex/v1/order").allowed
    clock.now += 0.2
    assert rl.check("u", "POST", "/opex/v1/order").allowed


def test_check_when_violations_repeat_then_blocks_escalate_60_120_180() -> None:
    rl, clock = limiter()
    blocks = []
    for _ in range(4):
        burst(rl, 10)
        decision = rl.check("u", "POST", "/opex/v1/order")
        if decision.allowed:  # the bucket still had tokens left over; empty it
            burst(rl, 20)
            decision = rl.check("u", "POST", "/opex/v1/order")
        blocks.append(decision.retry_after_s)
        clock.now += decision.retry_after_s + 0.001
    assert blocks == [60, 120, 180, 180]


def test_check_when_allowed_after_the_cooldown_then_each_forgives_one_violation() -> None:
    """As OPEX's `onAllowed`: once `cooldown` has passed since the last violation, every
    allowed request forgives one (the time of the last violation stays)."""
    rl, clock = limiter()
    burst(rl, 11)  # violation 1, block 60 s
    clock.now += 61
    burst(rl, 11)  # violation 2, block 120 s
    clock.now += 121  # the block is over, the cooldown (300 s) is not
    burst(rl, 20)
    assert rl.check("u", "POST", "/opex/v1/order").retry_after_s == 180  # violation 3
    clock.now += 181 + 300
    assert burst(rl, 3) == [True, True, True]  # forgives 3 -> 0
    burst(rl, 20)
    assert rl.check("u", "POST", "/opex/v1/order").retry_after_s == 60


def test_check_when_time_passes_then_tokens_refill_gradually() -> None:
    rl, clock = limiter()
    burst(rl, 10)
    clock.now += 6  # 10 per 60 s: one token every 6 s
    assert rl.check("u", "POST", "/opex/v1/order").allowed
    assert not rl.check("u", "POST", "/opex/v1/order").allowed


def test_check_when_other_user_method_or_path_then_separate_buckets() -> None:
    rl, _ = limiter()
    burst(rl, 10)
    assert rl.check("v", "POST", "/opex/v1/order").allowed
    assert rl.check("u", "PUT", "/opex/v1/order").allowed
    assert rl.check("u", "GET", "/opex/v1/order/open").allowed
    assert rl.check("u", "GET", "/opex/v1/wallet/asset").allowed


def test_check_when_path_not_covered_then_unlimited() -> None:
    rl, _ = limiter()
    assert all(burst(rl, 100, method="POST", path="/v3/order"))
    assert all(burst(rl, 100, method="DELETE", path="/opex/v1/order"))  # no DELETE rule
    assert all(burst(rl, 100, method="GET", path="/opex/v1/market/depth"))
    assert all(burst(rl, 100, method="GET", path="/opex/v1/orderbook"))  # not /order/**


def test_check_when_admin_path_then_admin_group_15_per_30_s() -> None:
    rl, clock = limiter()
    path = "/opex/v1/admin/deposit/manually/10_USDT/u-2"
    assert burst(rl, 15, path=path) == [True] * 15
    refused = rl.check("u", "POST", path)
    assert (refused.allowed, refused.retry_after_s) == (False, 60)
    clock.now += 60.1
    assert rl.check("u", "POST", path).allowed


def test_check_when_configured_limit_then_used() -> None:
    rl, _ = limiter(low_requests=3, low_window_s=1)
    assert burst(rl, 4) == [True, True, True, False]


def test_check_when_disabled_then_everything_allowed() -> None:
    rl, _ = limiter()
    rl.enabled = False
    assert all(burst(rl, 50))
