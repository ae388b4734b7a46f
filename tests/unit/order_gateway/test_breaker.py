"""The circuit breaker, with an injected clock."""

from __future__ import annotations

from services.order_gateway.domain import BreakerState, CircuitBreaker, ManualClock


def _open_breaker() -> tuple[CircuitBreaker, ManualClock]:
    clock = ManualClock()
    breaker = CircuitBreaker(clock, failure_threshold=3, cool_down_ms=30_000)
    for _ in range(3):
        breaker.record_failure()
    return breaker, clock


def test_record_failure_when_below_threshold_then_closed() -> None:
    breaker = CircuitBreaker(ManualClock(), failure_threshold=3, cool_down_ms=30_000)
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow()


def test_record_failure_when_threshold_reached_then_open_and_refuses() -> None:
    breaker, clock = _open_breaker()
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()
    clock.advance(10_000)
    assert breaker.retry_in_ms() == 20_000
    assert breaker.opened_count == 1


def test_state_when_cool_down_passed_then_half_open_one_trial() -> None:
    breaker, clock = _open_breaker()
    clock.advance(30_000)
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow()
    assert not breaker.allow()


def test_record_success_when_half_open_then_closed() -> None:
    breaker, clock = _open_breaker()
    clock.advance(30_000)
    breaker.allow()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED


def test_record_failure_when_half_open_then_open_again_with_new_cool_down() -> None:
    breaker, clock = _open_breaker()
    clock.advance(30_000)
    breaker.allow()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    clock.advance(29_999)
    assert not breaker.allow()
    clock.advance(1)
    assert breaker.allow()
