"""`CommandStore` against PostgreSQL: the one-statement write stages exactly the outbox
row `shared.messaging.stage` would, commands of one moment share a batch, and a batch
that fails leaves nothing behind and answers 503."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from services.notifier.adapters.commands import CommandStore
from services.notifier.adapters.errors import error_response
from services.notifier.domain.refusals import Refusal, RefusalCode
from services.notifier.domain.trading import Intent, place_order
from shared.db import Database
from shared.messaging import stage
from tests.integration.notifier.helpers import unique

pytestmark = pytest.mark.integration

_OUTBOX_ROW = text(
    "SELECT topic, key, payload, headers FROM outbox WHERE message_id = CAST(:id AS uuid)"
)


def order(user: str, **extra: Any) -> Intent:
    body = {"symbol": "BTCUSDT", "side": "buy", "type": "limit", "quantity": "0.01"}
    return place_order(user, {**body, "price": "45000", **extra})


async def outbox_row(db: Database, command_id: str) -> tuple[Any, ...] | None:
    async with db.transaction() as session:
        row = (await session.execute(_OUTBOX_ROW, {"id": command_id})).first()
    return None if row is None else tuple(row)


async def test_submit_when_accepted_then_outbox_row_is_what_stage_writes(db: Database) -> None:
    store = CommandStore(db, topic_prefix="pfx.")
    intent = order(unique("user"))
    try:
        accepted = await store.submit(intent)
    finally:
        await store.aclose()
    assert accepted.response["command_id"] == intent.command_id
    written = await outbox_row(db, intent.command_id)
    assert written is not None
    async with db.transaction() as session:
        await session.execute(
            text("DELETE FROM outbox WHERE message_id = CAST(:id AS uuid)"),
            {"id": intent.command_id},
        )
        await stage(session, [(intent.envelope, None, intent.payload)], topic_prefix="pfx.")
    staged = await outbox_row(db, intent.command_id)
    assert written == staged
    assert written[0] == "pfx.orders.commands"


async def test_submit_when_concurrent_then_one_batch_and_every_row_written(db: Database) -> None:
    commits: list[int] = []
    store = CommandStore(db, on_commit=lambda: commits.append(1))
    intents = [order(unique("user")) for _ in range(20)]
    try:
        results = await asyncio.gather(*(store.submit(i) for i in intents))
    finally:
        await store.aclose()
    assert [r.response["command_id"] for r in results] == [i.command_id for i in intents]
    assert len(commits) < len(intents)  # they shared commits
    for intent in intents:
        assert await outbox_row(db, intent.command_id) is not None


async def test_submit_when_batch_fails_then_503_and_nothing_half_written(db: Database) -> None:
    good = CommandStore(db)
    broken = CommandStore(db, topic_prefix="x" * 300)  # no outbox topic fits: the insert fails
    user = unique("user")
    intents = [order(user), order(user, client_order_id=unique("c"))]
    try:
        outcomes = await asyncio.gather(
            *(broken.submit(i, f"key-{n}") for n, i in enumerate(intents)),
            return_exceptions=True,
        )
        assert all(isinstance(o, Exception) for o in outcomes)
        for outcome in outcomes:
            assert isinstance(outcome, Exception)
            assert error_response(outcome).status_code == 503
        async with db.transaction() as session:
            claimed = (
                await session.execute(
                    text("SELECT count(*) FROM commands WHERE user_id = :u"), {"u": user}
                )
            ).scalar_one()
        assert claimed == 0
        for intent in intents:
            assert await outbox_row(db, intent.command_id) is None
        # the same keys are free: the failed batch claimed nothing
        accepted = await good.submit(intents[0], "key-0")
        assert not accepted.replayed
    finally:
        await broken.aclose()
        await good.aclose()


async def test_fingerprint_kept_only_with_an_idempotency_key(db: Database) -> None:
    store = CommandStore(db)
    user = unique("user")
    plain, keyed = order(user), order(user)
    try:
        await store.submit(plain)
        await store.submit(keyed, "key-1")
        replayed = await store.submit(order(user), "key-1")  # same request, same key
        reused = order(user, price="46000")
        with pytest.raises(Refusal) as refused:
            await store.submit(reused, "key-1")  # another request, same key
    finally:
        await store.aclose()
    async with db.transaction() as session:
        rows = await session.execute(
            text("SELECT command_id::text, fingerprint FROM commands WHERE user_id = :u"),
            {"u": user},
        )
        stored: dict[str, str | None] = {str(c): f for c, f in rows.all()}
    assert stored == {plain.command_id: None, keyed.command_id: keyed.fingerprint}
    assert replayed.replayed
    assert replayed.response["command_id"] == keyed.command_id
    assert refused.value.code == RefusalCode.IDEMPOTENCY_KEY_REUSED
    async with db.transaction() as session:
        with pytest.raises(IntegrityError, match="commands_fingerprint_with_key"):
            await session.execute(
                text(
                    "INSERT INTO commands (command_id, user_id, operation, symbol,"
                    " idempotency_key, fingerprint, response) VALUES (gen_random_uuid(), :u,"
                    " 'place_order', 'BTC_USDT', 'key-2', NULL, '{}')"
                ),
                {"u": user},
            )
