"""The Kafka topics of the suite (ARCHITECTURE.md, Topics)."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Topic"]


class Topic(StrEnum):
    """A topic name. Every topic is keyed by ``user_id`` except the ``market.*`` ones,
    which are keyed by symbol."""

    ORDERS_COMMANDS = "orders.commands"
    ORDERS_APPROVED = "orders.approved"
    ORDERS_EVENTS = "orders.events"
    POSITIONS_EVENTS = "positions.events"
    ACCOUNTS_EVENTS = "accounts.events"
    USERS_EVENTS = "users.events"
    MARKET_INSTRUMENTS = "market.instruments"
    MARKET_TICKERS = "market.tickers"

    @property
    def keyed_by_user(self) -> bool:
        """True when the topic's partition key is the user id, False for symbol keys."""
        return not self.value.startswith("market.")
