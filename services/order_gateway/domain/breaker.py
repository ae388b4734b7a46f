"""A circuit breaker for OPEX as a whole: it stops hammering an OPEX that is down and
resumes by itself.

CLOSED --N consecutive failures--> OPEN --cool-down passed--> HALF_OPEN (one trial)
HALF_OPEN --success--> CLOSED;  HALF_OPEN --failure--> OPEN (a new cool-down)

A failure is an `OpexUnavailable` or `OpexAmbiguous` outcome; a refusal (4xx) and a
429 mean OPEX is up, so they count as a success and as nothing respectively. Time comes
from the injected clock.
"""

from __future__ import annotations

from enum import StrEnum

from .clock import Clock

__all__ = ["BreakerState", "CircuitBreaker"]


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    def __init__(
        self, clock: Clock, *, failure_threshold: int = 5, cool_down_ms: int = 30_000
    ) -> None:
        if failure_threshold <= 0 or cool_down_ms <= 0:
            raise ValueError("failure_threshold and cool_down_ms must be positive")
        self._clock = clock
        self.failure_threshold = failure_threshold
        self.cool_down_ms = cool_down_ms
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0
        self._trial_out = False
        self.opened_count = 0
        """How many times the breaker opened (a metric)."""

    @property
    def state(self) -> BreakerState:
        if (
            self._state is BreakerState.OPEN
            and self._clock() >= self._opened_at + self.cool_down_ms
        ):
            self._state = BreakerState.HALF_OPEN
            self._trial_out = False
        return self._state

    def retry_in_ms(self) -> int:
        """How long until a request may go (0: now)."""
        state = self.state
        if state is BreakerState.OPEN:
            return self._opened_at + self.cool_down_ms - self._clock()
        return 0

    def allow(self) -> bool:
        """May a request go now? In HALF_OPEN only one trial at a time."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self._trial_out:
            self._trial_out = True
            return True
        return False

    def record_success(self) -> None:
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._trial_out = False

    def record_failure(self) -> None:
        state = self.state
        if state is BreakerState.HALF_OPEN:
            self._open()
            return
        self._failures += 1
        if state is BreakerState.CLOSED and self._failures >= self.failure_threshold:
            self._open()

    def _open(self) -> None:
        self._state = BreakerState.OPEN
        self._opened_at = self._clock()
        self._failures = 0
        self._trial_out = False
        self.opened_count += 1
