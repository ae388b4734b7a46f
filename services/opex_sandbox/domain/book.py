"""One side of an order book: price levels in a heap plus a dict, each level a FIFO deque.

Keys are the price for asks and the negated price for bids, so the heap's smallest key is
always the best level. Heap entries are unique per key (`_in_heap`) and removed lazily when
they surface with no live level. Cancels are lazy too: the level's quantity and count drop at
once, the order object stays in its deque until matching or compaction passes it (matching
skips orders that are no longer working), which keeps cancel O(1).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from decimal import Decimal
from heapq import heappop, heappush

from .orders import ZERO, Order, OrderStatus

_NEW = OrderStatus.NEW
_PARTIAL = OrderStatus.PARTIALLY_FILLED


class Level:
    __slots__ = ("count", "orders", "price", "qty")

    def __init__(self, price: Decimal) -> None:
        self.price = price
        self.orders: deque[Order] = deque()
        self.qty = ZERO  # remaining quantity of the working orders
        self.count = 0  # number of working orders

    def working(self) -> Iterator[Order]:
        for o in self.orders:
            if o.status is _NEW or o.status is _PARTIAL:
                yield o


class BookSide:
    __slots__ = ("_heap", "_in_heap", "is_bid", "levels")

    def __init__(self, is_bid: bool) -> None:
        self.is_bid = is_bid
        self.levels: dict[Decimal, Level] = {}
        self._heap: list[Decimal] = []
        self._in_heap: set[Decimal] = set()

    def best(self) -> Level | None:
        heap = self._heap
        levels = self.levels
        while heap:
            lvl = levels.get(heap[0])
            if lvl is not None:
                return lvl
            self._in_heap.discard(heappop(heap))
        return None

    def add(self, order: Order) -> None:
        """Append a working order at the back of its price level."""
        key = -order.price if self.is_bid else order.price
        lvl = self.levels.get(key)
        if lvl is None:
            lvl = self.levels[key] = Level(order.price)
            if key not in self._in_heap:
                self._in_heap.add(key)
                heappush(self._heap, key)
        lvl.orders.append(order)
        lvl.qty += order.orig_qty - order.executed_qty
        lvl.count += 1

    def remove(self, order: Order) -> None:
        """Take a still-working order out of the book (call before changing its status)."""
        key = -order.price if self.is_bid else order.price
        lvl = self.levels[key]
        lvl.qty -= order.orig_qty - order.executed_qty
        lvl.count -= 1
        if lvl.count == 0:
            del self.levels[key]
        elif len(lvl.orders) > 2 * lvl.count + 16:
            lvl.orders = deque(o for o in lvl.orders if o is not order and o.status.is_working)

    def drop(self, lvl: Level) -> None:
        """Forget a level whose working orders were all filled."""
        del self.levels[-lvl.price if self.is_bid else lvl.price]

    def sorted_levels(self) -> list[Level]:
        """Levels best first."""
        return [self.levels[k] for k in sorted(self.levels)]

    def depth(self, limit: int) -> list[tuple[Decimal, Decimal]]:
        keys = sorted(self.levels)[:limit] if limit < len(self.levels) else sorted(self.levels)
        return [(self.levels[k].price, self.levels[k].qty) for k in keys]

    def orders_in_priority(self) -> list[Order]:
        """Working orders in matching order: best price first, then arrival."""
        return [o for lvl in self.sorted_levels() for o in lvl.working()]

    def __len__(self) -> int:
        return sum(lvl.count for lvl in self.levels.values())
