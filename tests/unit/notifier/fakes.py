"""In-memory stand-ins for the notifier's store, hub, dead letters and ASGI socket."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from services.notifier.domain.events import GlobalNotice, StreamItem
from services.notifier.domain.stream import (
    Cursor,
    Record,
    Recorded,
    Resume,
    ResumeDecision,
    StreamEntry,
    assign_seqs,
    counts_by_user,
    decide_resume,
)
from shared.messaging import Delivery


@dataclass
class MemoryStore:
    """The store's contract in memory: inbox by message id, contiguous seqs, rows."""

    inbox: set[UUID] = field(default_factory=set)
    cursors: dict[str, Cursor] = field(default_factory=dict)
    rows: dict[str, list[StreamEntry]] = field(default_factory=dict)
    by_message: dict[UUID, StreamEntry] = field(default_factory=dict)
    fail_with: list[BaseException] = field(default_factory=list)
    poison: set[UUID] = field(default_factory=set)
    calls: int = 0

    async def record(self, records: Sequence[Record]) -> Recorded:
        self.calls += 1
        if self.fail_with:
            raise self.fail_with.pop(0)
        if any(r.message_id in self.poison for r in records):
            raise ValueError("poisoned")
        result = Recorded()
        items: list[StreamItem] = []
        for record in records:
            item = record.item
            fresh = item.message_id not in self.inbox
            self.inbox.add(item.message_id)
            if isinstance(item, GlobalNotice):
                if fresh:
                    result.notices.append(item)
            elif fresh:
                items.append(item)
            else:
                result.duplicates.append(item)
        last: dict[str, int] = {}
        for user, n in counts_by_user(items).items():
            cursor = self.cursors.get(user, Cursor(f"epoch-{user}"))
            self.cursors[user] = Cursor(cursor.epoch, cursor.last_seq + n, cursor.floor_seq)
            last[user] = cursor.last_seq + n
        for item, seq in assign_seqs(items, last):
            entry = StreamEntry(item.user_id, seq, item.channel, item.frame(seq))
            self.rows.setdefault(item.user_id, []).append(entry)
            self.by_message[item.message_id] = entry
            result.entries.append(entry)
        return result

    async def entries_for(self, message_ids: Sequence[UUID]) -> list[StreamEntry]:
        return sorted(
            (self.by_message[m] for m in message_ids if m in self.by_message),
            key=lambda e: (e.user_id, e.seq),
        )

    def cursor(self, user_id: str) -> Cursor:
        return self.cursors.setdefault(user_id, Cursor(f"epoch-{user_id}"))

    async def resume(
        self, user_id: str, since: int | None, epoch: str | None
    ) -> tuple[Cursor, ResumeDecision, list[StreamEntry]]:
        cursor = self.cursor(user_id)
        decision = decide_resume(cursor, since, epoch)
        replay: list[StreamEntry] = []
        if decision.outcome is Resume.RECOVERED:
            replay = [e for e in self.rows.get(user_id, []) if e.seq > decision.start_after]
        return cursor, decision, replay

    async def read_range(self, user_id: str, after: int, through: int) -> list[StreamEntry]:
        return [e for e in self.rows.get(user_id, []) if after < e.seq <= through]


@dataclass
class RecordingHub:
    users: set[str] = field(default_factory=set)
    published: list[StreamEntry] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    tickers: list[tuple[str, str]] = field(default_factory=list)

    def has_user(self, user_id: str) -> bool:
        return user_id in self.users

    async def publish(self, entries: Sequence[StreamEntry]) -> None:
        self.published.extend(entries)

    def publish_notice(self, frame: str) -> None:
        self.notices.append(frame)

    def publish_ticker(self, symbol: str, frame: str) -> None:
        self.tickers.append((symbol, frame))


@dataclass
class RecordingDeadLetters:
    sent: list[tuple[Delivery, BaseException, int]] = field(default_factory=list)

    async def send(self, delivery: Delivery, error: BaseException, *, attempts: int) -> None:
        self.sent.append((delivery, error, attempts))


@dataclass
class FakeSocket:
    """The ASGI ``send`` side of a WebSocket: records what the server wrote."""

    sent: list[dict[str, Any]] = field(default_factory=list)
    stalled: bool = False
    """When set, every send waits forever (a client whose socket takes nothing)."""

    async def __call__(self, message: Any) -> None:
        if self.stalled:
            await asyncio.Event().wait()
        self.sent.append(dict(message))

    @property
    def texts(self) -> list[str]:
        return [m["text"] for m in self.sent if m["type"] == "websocket.send"]
