"""The injected clock: a zero-argument callable returning epoch milliseconds.

A copy of the risk engine's (services do not import each other; ten lines are cheaper
than a shared dependency)."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["Clock", "ManualClock", "system_clock"]

Clock = Callable[[], int]
"""Epoch milliseconds (UTC). The domain never reads the time any other way."""


def system_clock() -> int:
    """Wall-clock epoch milliseconds (what the service injects)."""
    return time.time_ns() // 1_000_000


class ManualClock:
    """A settable clock for tests and replays."""

    __slots__ = ("now",)

    def __init__(self, start_ms: int = 1_767_225_600_000) -> None:  # 2026-01-01T00:00Z
        self.now = start_ms

    def __call__(self) -> int:
        return self.now

    def advance(self, ms: int) -> int:
        if ms < 0:
            raise ValueError("a clock does not run backwards")
        self.now += ms
        return self.now
