"""Stop and stop-limit orders held by the gateway (OPEX has none: OPEX.md, Orders).

`StopBook.on_last_price` releases, once, every held order whose stop the ticker's last
price crossed: a buy stop when last >= stop, a sell stop when last <= stop. Released
orders come out in the order they were held (then by client order id), and leave the
book, so each triggers exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from shared.contracts import Side

__all__ = ["HeldStop", "StopBook"]


@dataclass(frozen=True, slots=True)
class HeldStop:
    user_id: str
    client_order_id: str
    symbol: str
    side: Side
    stop_price: Decimal
    seq: int

    def crossed_by(self, last: Decimal) -> bool:
        return last >= self.stop_price if self.side is Side.BUY else last <= self.stop_price


class StopBook:
    """Held stops by symbol; rebuilt at start from the held orders."""

    def __init__(self) -> None:
        self._by_symbol: dict[str, dict[tuple[str, str], HeldStop]] = {}
        self._seq = 0

    def __len__(self) -> int:
        return sum(len(book) for book in self._by_symbol.values())

    def hold(
        self, user_id: str, client_order_id: str, symbol: str, side: Side, stop_price: Decimal
    ) -> HeldStop:
        """Hold an order (holding it again keeps its first place)."""
        book = self._by_symbol.setdefault(symbol, {})
        key = (user_id, client_order_id)
        if key in book:
            return book[key]
        self._seq += 1
        stop = HeldStop(user_id, client_order_id, symbol, side, stop_price, self._seq)
        book[key] = stop
        return stop

    def drop(self, user_id: str, client_order_id: str, symbol: str) -> bool:
        """Forget a held order (it was canceled); False if it was not held."""
        book = self._by_symbol.get(symbol)
        return book is not None and book.pop((user_id, client_order_id), None) is not None

    def on_last_price(self, symbol: str, last: Decimal | None) -> list[HeldStop]:
        """The orders to release now, in holding order; they leave the book."""
        book = self._by_symbol.get(symbol)
        if not book or last is None:
            return []
        fired = sorted(
            (stop for stop in book.values() if stop.crossed_by(last)),
            key=lambda stop: (stop.seq, stop.client_order_id),
        )
        for stop in fired:
            del book[(stop.user_id, stop.client_order_id)]
        return fired
