"""`Book`: the orders the gateway holds in memory, with the indexes the service needs
(by client order id, by OPEX id, each user's open orders) and the held stops.

Memory is a cache of the ``orders`` table: the service changes an order here and
writes it in the same step that stages its events; when a write fails it reloads the
book from the table. Finished orders stay for ``keep_finished_ms`` (at least the
correlation window) so their OPEX ids stay claimed and a late fill still finds them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from uuid import UUID

from .orders import GatewayOrder
from .stops import StopBook

__all__ = ["Book", "Tracked"]


@dataclass(slots=True)
class Tracked:
    """An order and what its events need: the command's correlation id and the message
    that caused it (the approval)."""

    order: GatewayOrder
    correlation_id: UUID | None = None
    causation_id: UUID | None = None
    last_query_at_ms: int | None = None
    """When the last listing that covered this in-flight order's window was asked for."""
    finished_at_ms: int | None = None
    seen_listing: tuple[object, object] | None = None
    """(status, executed quantity) of the last listing applied: an unchanged listing is
    skipped (memory only)."""
    slot_ms: int | None = None
    """When this order took its rate-limit slot (restamped when the request leaves)."""
    request_done_ms: int | None = None
    """When this process last saw the order's placement request end; a listing read
    before that proves nothing about the order (None after a restart)."""
    cancel_sent_ms: int | None = None
    """When this process first sent the order's cancel (None after a restart): OPEX
    changes the order no earlier than that, so a narrow listing window finds it."""

    @property
    def client_order_id(self) -> str:
        return self.order.client_order_id

    @property
    def user_id(self) -> str:
        return self.order.user_id


@dataclass
class Book:
    keep_finished_ms: int = 600_000
    orders: dict[str, Tracked] = field(default_factory=dict)
    by_opex: dict[tuple[str, str], str] = field(default_factory=dict)
    """(symbol, OPEX order id) -> client order id: OPEX numbers orders per pair."""
    open_by_user: dict[str, set[str]] = field(default_factory=dict)
    all_by_user: dict[str, set[str]] = field(default_factory=dict)
    in_flight_by_user: dict[str, set[str]] = field(default_factory=dict)
    stops: StopBook = field(default_factory=StopBook)

    def __len__(self) -> int:
        return len(self.orders)

    def __contains__(self, client_order_id: object) -> bool:
        return client_order_id in self.orders

    def get(self, client_order_id: str) -> Tracked | None:
        return self.orders.get(client_order_id)

    def by_opex_id(self, symbol: str, opex_order_id: str) -> Tracked | None:
        cid = self.by_opex.get((symbol, opex_order_id))
        return self.orders.get(cid) if cid is not None else None

    def add(self, tracked: Tracked, now_ms: int) -> None:
        """Hold ``tracked`` (a new order, or one loaded from the table)."""
        self.orders[tracked.client_order_id] = tracked
        self.all_by_user.setdefault(tracked.user_id, set()).add(tracked.client_order_id)
        self.touch(tracked, now_ms)

    def touch(self, tracked: Tracked, now_ms: int) -> None:
        """Bring the indexes in line with the order after it changed."""
        order = tracked.order
        cid = order.client_order_id
        if order.opex_order_id is not None:
            self.by_opex[(order.symbol, order.opex_order_id)] = cid
        flying = self.in_flight_by_user.setdefault(order.user_id, set())
        if order.is_in_flight:
            flying.add(cid)
        else:
            flying.discard(cid)
            if not flying:
                del self.in_flight_by_user[order.user_id]
        mine = self.open_by_user.setdefault(order.user_id, set())
        if order.is_open:
            mine.add(cid)
            if order.held and order.stop_price is not None:
                self.stops.hold(order.user_id, cid, order.symbol, order.side, order.stop_price)
        else:
            mine.discard(cid)
            if not mine:
                del self.open_by_user[order.user_id]
            self.stops.drop(order.user_id, cid, order.symbol)
            if tracked.finished_at_ms is None:
                tracked.finished_at_ms = now_ms

    def open_of(self, user_id: str) -> list[Tracked]:
        """The user's open orders (in no particular order)."""
        return [self.orders[cid] for cid in self.open_by_user.get(user_id, ())]

    def in_flight_of(self, user_id: str) -> list[Tracked]:
        """The user's orders sent (or maybe sent) and not yet correlated; kept by
        `touch`, so call it after every change, `begin_submit` included."""
        return [self.orders[cid] for cid in self.in_flight_by_user.get(user_id, ())]

    def of_user(self, user_id: str) -> Iterator[Tracked]:
        """Every order of the user the book holds (open and recently finished)."""
        return (self.orders[cid] for cid in self.all_by_user.get(user_id, ()))

    def users_with_open_orders(self) -> list[str]:
        return sorted(self.open_by_user)

    def claimed_ids(self, user_id: str, symbol: str) -> set[str]:
        """The OPEX ids of ``symbol`` bound to the user's orders (open or finished)."""
        return {
            t.order.opex_order_id
            for t in self.of_user(user_id)
            if t.order.opex_order_id is not None and t.order.symbol == symbol
        }

    def in_flight(self) -> Iterable[Tracked]:
        return (self.orders[cid] for cids in self.in_flight_by_user.values() for cid in cids)

    def prune(self, now_ms: int) -> int:
        """Forget finished orders older than ``keep_finished_ms``; how many went."""
        old = [
            cid
            for cid, t in self.orders.items()
            if t.finished_at_ms is not None and now_ms - t.finished_at_ms > self.keep_finished_ms
        ]
        for cid in old:
            tracked = self.orders.pop(cid)
            for index in (self.in_flight_by_user, self.open_by_user):
                left = index.get(tracked.user_id)
                if left is not None:
                    left.discard(cid)
                    if not left:
                        del index[tracked.user_id]
            mine = self.all_by_user.get(tracked.user_id)
            if mine is not None:
                mine.discard(cid)
                if not mine:
                    del self.all_by_user[tracked.user_id]
            if tracked.order.opex_order_id is not None:
                self.by_opex.pop((tracked.order.symbol, tracked.order.opex_order_id), None)
        return len(old)
