"""Many concurrent look-ups, one query: `Coalescer` gathers the keys asked for while a
query is in flight and answers them with the next one.

A reconnect storm (a notifier restart, thousands of clients coming back at once) costs a
statement per few hundred clients instead of one per client, and nothing waits for a
timer: the first caller's query starts at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Generic, TypeVar

__all__ = ["Coalescer"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Coalescer(Generic[K, V]):
    """``await load(key)`` → ``fetch([keys...])[key]``, with at most ``max_batch`` keys
    per ``fetch`` and one ``fetch`` running at a time. A key ``fetch`` leaves out gets
    `LookupError`; a failed ``fetch`` fails every caller of its batch."""

    def __init__(
        self, fetch: Callable[[Sequence[K]], Awaitable[dict[K, V]]], *, max_batch: int = 500
    ) -> None:
        self._fetch = fetch
        self._max = max_batch
        self._waiting: dict[K, list[asyncio.Future[V]]] = {}
        self._runner: asyncio.Task[None] | None = None

    async def load(self, key: K) -> V:
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, []).append(future)
        if self._runner is None:
            self._runner = asyncio.create_task(self._run())
        return await future

    async def _run(self) -> None:
        try:
            while self._waiting:
                keys = list(self._waiting)[: self._max]
                futures = {key: self._waiting.pop(key) for key in keys}
                try:
                    found = await self._fetch(keys)
                except Exception as error:
                    for waiters in futures.values():
                        for future in waiters:
                            if not future.done():
                                future.set_exception(error)
                    continue
                for key, waiters in futures.items():
                    for future in waiters:
                        if future.done():
                            continue
                        if key in found:
                            future.set_result(found[key])
                        else:
                            future.set_exception(LookupError(key))
        finally:
            self._runner = None
