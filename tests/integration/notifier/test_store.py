"""The store against PostgreSQL: seqs stay contiguous with concurrent writers (two
instances), a message is recorded once however often it comes, snapshots agree with
the stream position, retention moves the floor."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from services.notifier.adapters.store import StreamStore
from services.notifier.domain.events import StreamItem, translate
from services.notifier.domain.stream import Record, Resume, Retention
from shared.contracts import Envelope, OrderCanceled, OrderStatus, new_message
from shared.db import Database
from tests.integration.notifier.helpers import order_accepted, position_updated, unique

pytestmark = pytest.mark.integration


@pytest.fixture
async def stores(db: Database) -> AsyncIterator[list[StreamStore]]:
    """Stores to close after the test (each keeps a write connection)."""
    opened: list[StreamStore] = []
    try:
        yield opened
    finally:
        for store in opened:
            await store.aclose()


def opened(stores: list[StreamStore], store: StreamStore) -> StreamStore:
    stores.append(store)
    return store


def record(envelope: Envelope[Any], offset: int = 0) -> Record:
    item = translate(envelope)
    assert isinstance(item, StreamItem)
    return Record(item, "orders.events", 0, offset)


async def test_record_when_delivered_twice_then_one_seq_and_a_duplicate(
    db: Database, stores: list[StreamStore]
) -> None:
    store = opened(stores, StreamStore(db))
    user = unique("dup")
    batch = [record(order_accepted(user, f"o{i}"), i) for i in range(3)]
    first = await store.record(batch)
    again = await store.record(batch)
    assert [e.seq for e in first.entries] == [1, 2, 3]
    assert (again.entries, len(again.duplicates)) == ([], 3)
    assert [e.seq for e in await store.entries_for([r.message_id for r in batch])] == [1, 2, 3]
    assert (await store.cursor(user)).last_seq == 3


async def test_record_when_two_instances_race_on_the_same_users_then_seqs_contiguous(
    db: Database, database_url: str, schema: str, stores: list[StreamStore]
) -> None:
    other_db = Database(database_url, schema, pool_size=4)
    mine, theirs = opened(stores, StreamStore(db)), StreamStore(other_db)
    users = [unique("race") for _ in range(3)]
    messages = [record(order_accepted(users[i % 3], f"o{i}"), i) for i in range(120)]
    try:
        # both instances read every event; batches overlap and interleave
        await asyncio.gather(
            *(mine.record(messages[i : i + 20]) for i in range(0, 120, 20)),
            *(theirs.record(messages[i : i + 30]) for i in range(0, 120, 30)),
        )
    finally:
        await theirs.aclose()
        await other_db.dispose()
    entries = await mine.entries_for([m.message_id for m in messages])
    assert len(entries) == 120
    for user in users:
        seqs = sorted(e.seq for e in entries if e.user_id == user)
        assert seqs == list(range(1, 41))
        assert (await mine.cursor(user)).last_seq == 40


async def test_snapshot_when_order_terminal_then_later_stale_update_does_not_reopen_it(
    db: Database, stores: list[StreamStore]
) -> None:
    store = opened(stores, StreamStore(db))
    user = unique("term")
    accepted = order_accepted(user, "c1")
    canceled = new_message(
        OrderCanceled(**{**accepted.data.model_dump(), "status": OrderStatus.CANCELED}),
        user_id=user,
    )
    stale = order_accepted(user, "c1")
    await store.record([record(accepted, 0), record(canceled, 1)])
    await store.record([record(stale, 2), record(position_updated(user, "BTC_USDT", "2"), 3)])
    orders = await store.orders_snapshot(user)
    assert (orders.seq, len(orders.items)) == (4, 1)
    assert orders.items[0]["status"] == "canceled"
    assert orders.items[0]["seq"] == 2
    assert (await store.orders_snapshot(user, terminal=False)).items == []
    positions = await store.positions_snapshot(user, symbol="BTC_USDT")
    assert [(p["quantity"], p["seq"]) for p in positions.items] == [("2", 4)]
    assert positions.epoch == orders.epoch


async def test_prune_when_over_retention_then_floor_moves_and_resume_knows(
    db: Database, stores: list[StreamStore]
) -> None:
    store = opened(stores, StreamStore(db, retention=Retention(events=5)))
    user = unique("prune")
    await store.record([record(order_accepted(user, f"o{i}"), i) for i in range(12)])
    assert await store.prune() >= 7
    cursor = await store.cursor(user)
    assert (cursor.last_seq, cursor.floor_seq) == (12, 7)
    assert [e.seq for e in await store.read_range(user, 0, 12)] == list(range(8, 13))
    _c, old, _r = await store.resume(user, 6, cursor.epoch)
    _c, kept, replay = await store.resume(user, 7, cursor.epoch)
    assert (old.outcome, old.reason and old.reason.value) == (Resume.NOT_RECOVERED, "too_old")
    assert kept.outcome is Resume.RECOVERED
    assert [json.loads(e.frame)["seq"] for e in replay] == list(range(8, 13))


async def test_cursor_when_user_has_no_events_then_created_once_with_a_stable_epoch(
    db: Database, stores: list[StreamStore]
) -> None:
    store = opened(stores, StreamStore(db))
    user = unique("fresh")
    cursors = await asyncio.gather(*(store.cursor(user) for _ in range(5)))
    assert {c.epoch for c in cursors} == {cursors[0].epoch}
    assert cursors[0].last_seq == 0
    snapshot = await store.account_snapshot(user)
    assert (snapshot.epoch, snapshot.seq, snapshot.balances) == (cursors[0].epoch, 0, [])
