"""The injected clock: a zero-argument callable returning epoch milliseconds."""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], int]
"""Epoch milliseconds. The domain never reads the time any other way."""


def system_clock() -> int:
    """Wall-clock epoch milliseconds (the default the HTTP layer will inject)."""
    return time.time_ns() // 1_000_000


class ManualClock:
    """A settable clock for tests and deterministic simulations."""

    __slots__ = ("now",)

    def __init__(self, start_ms: int = 1_700_000_000_000) -> None:
        self.now = start_ms

    def __call__(self) -> int:
        return self.now

    def advance(self, ms: int) -> int:
        if ms < 0:
            raise ValueError("a clock does not run backwards")
        self.now += ms
        return self.now
