"""What waits to be written to one connection, under a byte budget.

The Kafka side only ever calls `Outbound.push` / `Outbound.push_ticker`, which never
block: a push that would take the queued bytes over the budget is refused, and the
caller disconnects the client as slow (close code 4500) instead of waiting for it.
Tickers are conflated: a connection holds at most the latest pending frame per symbol,
so a slow reader of a busy market gets fresher prices, not a longer queue.
"""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

__all__ = ["Outbound"]

T = TypeVar("T")


class Outbound(Generic[T]):
    """A FIFO of items with sizes plus latest-only ticker frames; ``budget`` bounds the
    bytes queued (tickers included). Empty connections hold no deque or dict."""

    __slots__ = ("_items", "_tickers", "budget", "queued_bytes")

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.queued_bytes = 0
        self._items: deque[tuple[T, int]] | None = None
        self._tickers: dict[str, str] | None = None

    def __len__(self) -> int:
        return (len(self._items) if self._items else 0) + (
            len(self._tickers) if self._tickers else 0
        )

    def push(self, item: T, size: int) -> bool:
        """Queue ``item`` of ``size`` bytes; False (and nothing queued) when the budget
        would be exceeded."""
        if self.queued_bytes + size > self.budget:
            return False
        if self._items is None:
            self._items = deque()
        self._items.append((item, size))
        self.queued_bytes += size
        return True

    def push_ticker(self, symbol: str, frame: str) -> tuple[bool, bool]:
        """Make ``frame`` the pending ticker of ``symbol``. Returns ``(accepted,
        replaced)``: ``replaced`` when an older pending frame was dropped for it."""
        tickers = self._tickers
        if tickers is None:
            tickers = self._tickers = {}
        old = tickers.get(symbol)
        size = len(frame) - (len(old) if old is not None else 0)
        if self.queued_bytes + size > self.budget:
            return False, False
        tickers[symbol] = frame
        self.queued_bytes += size
        return True, old is not None

    def pop(self) -> tuple[T | None, str | None]:
        """The next thing to write: ``(item, None)``, ``(None, ticker_frame)``, or
        ``(None, None)`` when empty. Tickers go first (at most one per symbol)."""
        if self._tickers:
            symbol = next(iter(self._tickers))
            frame = self._tickers.pop(symbol)
            self.queued_bytes -= len(frame)
            if not self._tickers:
                self._tickers = None
            return None, frame
        if self._items:
            item, size = self._items.popleft()
            self.queued_bytes -= size
            if not self._items:
                self._items = None
            return item, None
        return None, None

    def clear(self) -> int:
        """Drop everything; returns how many items and tickers were dropped."""
        dropped = len(self)
        self._items = None
        self._tickers = None
        self.queued_bytes = 0
        return dropped
