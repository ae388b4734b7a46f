"""The in-process fan-out: which connection wants which event.

Called from the Kafka side after each commit; every method only looks up connections
and hands them frames (`Subscriber.offer`), which queue and return. Nothing here waits on
a socket. `Hub.publish` yields to the event loop every `CHUNK` entries so that writers
whose sockets take data drain their queues between chunks: a Kafka batch of hundreds of
one user's events is not mistaken for a client falling behind, while a client whose
socket does not take data sees its queue grow past its budget.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator, Sequence
from typing import Protocol

from services.notifier.domain.protocol import ACCOUNT
from services.notifier.domain.stream import StreamEntry

__all__ = ["CHUNK", "Hub", "Subscriber"]

CHUNK = 64
"""Entries offered between two yields to the event loop."""


class Subscriber(Protocol):
    """A connection as the hub sees it (adapters/websocket.py `Connection`)."""

    @property
    def user_id(self) -> str: ...

    @property
    def mask(self) -> int: ...

    def offer(self, entry: StreamEntry) -> None: ...

    def offer_ticker(self, symbol: str, frame: str) -> None: ...

    def offer_control(self, frame: str) -> None: ...


class Hub:
    """Authenticated connections by user, ticker watchers by symbol, and the latest
    ticker of each symbol (sent to a new watcher at once)."""

    def __init__(self) -> None:
        self._users: dict[str, list[Subscriber]] = {}
        self._tickers: dict[str, set[Subscriber]] = {}
        self._latest: dict[str, str] = {}
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[Subscriber]:
        for connections in list(self._users.values()):
            yield from list(connections)

    def has_user(self, user_id: str) -> bool:
        return user_id in self._users

    def count(self, user_id: str) -> int:
        return len(self._users.get(user_id, ()))

    def add(self, connection: Subscriber) -> None:
        self._users.setdefault(connection.user_id, []).append(connection)
        self._count += 1

    def remove(self, connection: Subscriber, tickers: Iterable[str] = ()) -> None:
        """Forget ``connection`` (a no-op when it is not there)."""
        connections = self._users.get(connection.user_id)
        if connections is not None and connection in connections:
            connections.remove(connection)
            self._count -= 1
            if not connections:
                del self._users[connection.user_id]
        self.unwatch(connection, tickers)

    # -------------------------------------------------------------------- tickers

    def watch(self, connection: Subscriber, symbols: Iterable[str]) -> None:
        """Send ``symbols``' tickers to ``connection``, starting with the latest one."""
        for symbol in symbols:
            self._tickers.setdefault(symbol, set()).add(connection)
            latest = self._latest.get(symbol)
            if latest is not None:
                connection.offer_ticker(symbol, latest)

    def unwatch(self, connection: Subscriber, symbols: Iterable[str]) -> None:
        for symbol in symbols:
            watchers = self._tickers.get(symbol)
            if watchers is not None:
                watchers.discard(connection)
                if not watchers:
                    del self._tickers[symbol]

    # ---------------------------------------------------------------- publishing

    async def publish(self, entries: Sequence[StreamEntry]) -> None:
        """Offer each entry to its user's connections (seq order per user is kept),
        letting the writers run every `CHUNK` entries."""
        users = self._users
        for index, entry in enumerate(entries, 1):
            connections = users.get(entry.user_id)
            if connections:
                for connection in tuple(connections):
                    connection.offer(entry)
            if index % CHUNK == 0:
                await asyncio.sleep(0)

    def publish_notice(self, frame: str) -> None:
        """A global notice to every connection subscribed to ``account``."""
        for connection in self:
            if connection.mask & ACCOUNT:
                connection.offer_control(frame)

    def latest_ticker(self, symbol: str) -> str | None:
        """The latest ticker frame of ``symbol`` read from ``market.tickers``, if any."""
        return self._latest.get(symbol)

    def publish_ticker(self, symbol: str, frame: str) -> None:
        self._latest[symbol] = frame
        watchers = self._tickers.get(symbol)
        if watchers:
            for connection in tuple(watchers):
                connection.offer_ticker(symbol, frame)
