"""The trading API's write path: accepted commands, durably, exactly once
(README.md, REST API, Durability).

`CommandStore.submit` answers only after one PostgreSQL transaction has committed both

1. a row in ``commands`` (the command id, the caller, the ``Idempotency-Key`` if any,
   the request's fingerprint and the 202 body), and
2. the command's envelope in the notifier's ``outbox``,

and the `shared.messaging.OutboxRelay` publishes the outbox to ``orders.commands`` in
Kafka transactions, each row once. A key already used by the caller makes the insert a
no-op (``ON CONFLICT DO NOTHING``; a concurrent duplicate waits on the unique index
until the first commits), so nothing is staged and the stored 202 body is returned, or
a 422 when the request differs. A crash before the commit leaves nothing; after it, the
relay publishes.

Concurrent submissions share one transaction (group commit, `GroupCommit`): while one
batch is being written the next ones queue, so the cost of a commit is spread over every
request that arrived meanwhile. A batch is one SQL statement in autocommit mode (claim
and stage as data-modifying CTEs: one round trip, one transaction) on a connection the
write path keeps. A failed batch is retried when the failure is transient; every row's
command id is fixed, so a retry after an ambiguous commit finds its own rows and answers
as if it had inserted them. A batch that still fails answers each of its requests with
the error (503 ``unavailable`` for a database error), and nothing of it was written.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

import orjson
import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.notifier.domain.refusals import Refusal, RefusalCode
from services.notifier.domain.trading import Intent, KnownOrder, KnownPosition
from shared.contracts import partition_key
from shared.db import Database, is_transient_db_error
from shared.messaging._outbox import message_headers

__all__ = ["Accepted", "CommandStore", "GroupCommit"]

log = structlog.get_logger(__name__)

# One statement, so one transaction and one round trip (run in autocommit mode): claim
# each command's row (its command id, and its Idempotency-Key if any; in user and key
# order, so that two batches in flight lock the key index in the same order and cannot
# deadlock) and stage the
# envelopes of the rows it claimed in the outbox, exactly as `shared.messaging.stage`
# does (the same columns, headers and partition key, the payloads concatenated in one
# bytea parameter and cut out by offset; an integration test compares both).
_ACCEPT = text(
    """
    WITH input AS (
        SELECT * FROM json_to_recordset(CAST(:rows AS json)) AS x(
            n int, c uuid, u text, op text, coid text, sym text, ik text, fp text,
            resp json, tp text, k text, hd json, st int, sz int)
    ), claimed AS (
        INSERT INTO commands (command_id, user_id, operation, client_order_id, symbol,
                              idempotency_key, fingerprint, response)
        SELECT c, u, op, coid, sym, ik, fp, CAST(resp AS jsonb) FROM input ORDER BY u, ik, n
        ON CONFLICT DO NOTHING
        RETURNING command_id
    ), staged AS (
        INSERT INTO outbox (message_id, topic, key, payload, headers)
        SELECT i.c, i.tp, convert_to(i.k, 'UTF8'),
               substring(CAST(:payloads AS bytea) FROM i.st + 1 FOR i.sz), CAST(i.hd AS jsonb)
        FROM input i JOIN claimed ON claimed.command_id = i.c
        ORDER BY i.n
    )
    SELECT command_id FROM claimed
    """
)
_EXISTING = text(
    """
    SELECT x.n, cm.command_id, cm.fingerprint, cm.response
    FROM json_to_recordset(CAST(:rows AS json)) AS x(n int, c uuid, u text, ik text)
    JOIN commands cm
      ON cm.command_id = x.c OR (cm.user_id = x.u AND cm.idempotency_key = x.ik)
    """
)
_FIND_ORDER = text(
    """
    (SELECT 0 AS rank, client_order_id, data->>'order_id' AS order_id, symbol, status, terminal
     FROM orders
     WHERE user_id = :user AND (client_order_id = :ref OR data->>'order_id' = :ref)
     ORDER BY (client_order_id = :ref) DESC LIMIT 1)
    UNION ALL
    (SELECT 1, client_order_id, NULL, symbol, 'PENDING', false
     FROM commands
     WHERE user_id = :user AND operation = 'place_order' AND client_order_id = :ref
     ORDER BY created_at DESC LIMIT 1)
    ORDER BY rank LIMIT 1
    """
)
_FIND_POSITION = text(
    """
    SELECT data->>'id', symbol, quantity FROM positions
    WHERE user_id = :user AND (data->>'id' = :ref OR symbol = :symbol)
    ORDER BY (data->>'id' = :ref) DESC LIMIT 1
    """
)
_PRUNE = text("DELETE FROM commands WHERE created_at < :cutoff")


@dataclass(frozen=True, slots=True)
class Accepted:
    """A command durably accepted: the 202 body, and whether it was a replay of an
    earlier request with the same ``Idempotency-Key``."""

    response: dict[str, Any]
    replayed: bool = False


T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    """Requests that arrive together share one flush (group commit).

    `submit` queues an item and waits for its outcome. A flush takes every queued item
    (at most ``max_batch``) and hands them to ``flush``, which answers one outcome per
    item, in order: a result, or an exception for that item alone (a refusal). At most
    ``concurrency`` flushes run at once; items queued while they run form the next
    batch, which starts as soon as a flush finishes: no timer, so a lone request is
    written at once and a crowd shares a commit. With ``concurrency`` 2 a request that
    arrives during a flush does not wait for it to end (the database merges the two
    commits' WAL flushes). Each caller is answered only after the flush that carried
    its item returned (its transaction committed). If ``flush`` raises, every item of
    that batch gets the error (nothing of the batch was written: the flush is one
    transaction) and the next batch goes on.
    """

    def __init__(
        self,
        flush: Callable[[list[T]], Awaitable[Sequence[R | Exception]]],
        *,
        max_batch: int = 200,
        concurrency: int = 1,
        name: str = "group-commit",
    ) -> None:
        if max_batch < 1 or concurrency < 1:
            raise ValueError("max_batch and concurrency must be at least 1")
        self._flush = flush
        self._max_batch = max_batch
        self._concurrency = concurrency
        self._name = name
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._writers: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        """Items waiting for a flush (not counting the batches being flushed)."""
        return len(self._queue)

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if len(self._writers) < self._concurrency:
            writer = asyncio.create_task(self._drain(), name=self._name)
            self._writers.add(writer)
            writer.add_done_callback(self._writers.discard)
        return await future

    async def _drain(self) -> None:
        while self._queue:
            batch = self._queue[: self._max_batch]
            del self._queue[: self._max_batch]
            try:
                outcomes = await self._flush([item for item, _ in batch])
                if len(outcomes) != len(batch):
                    raise RuntimeError(f"{len(outcomes)} outcomes for {len(batch)} items")
            except Exception as error:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            except BaseException:  # cancelled (shutdown): nobody is left hanging
                for _, future in batch + self._queue:
                    future.cancel()
                raise
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if future.done():
                    continue  # the caller went away (its request was cancelled)
                if isinstance(outcome, Exception):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)

    async def aclose(self, timeout: float = 5.0) -> None:
        """Wait for the queued batches to be written (shutdown)."""
        if self._writers:
            await asyncio.wait(list(self._writers), timeout=timeout)


@dataclass(frozen=True, slots=True)
class _Pending:
    intent: Intent
    key: str | None


class CommandStore:
    """Writes accepted commands (and their outbox rows) and finds the caller's orders
    and positions, in the notifier's schema."""

    def __init__(
        self,
        db: Database,
        *,
        topic_prefix: str = "",
        on_commit: Callable[[], None] = lambda: None,
        max_batch: int = 200,
        concurrency: int = 2,
        attempts: int = 3,
    ) -> None:
        self.db = db
        self._prefix = topic_prefix
        self._on_commit = on_commit
        self._attempts = attempts
        self._batches: GroupCommit[_Pending, Accepted] = GroupCommit(
            self._write_with_retries,
            max_batch=max_batch,
            concurrency=concurrency,
            name="notifier-commands",
        )
        self._idle: list[AsyncConnection] = []

    # ------------------------------------------------------------------- writes

    async def submit(self, intent: Intent, idempotency_key: str | None = None) -> Accepted:
        """Store ``intent`` and its outbox row (one transaction shared with concurrent
        submissions); `Refusal` 422 when the key was used for another request."""
        return await self._batches.submit(_Pending(intent, idempotency_key))

    async def _write_with_retries(self, batch: list[_Pending]) -> list[Accepted | Exception]:
        attempt = 0
        while True:
            attempt += 1
            conn: AsyncConnection | None = None
            try:
                conn = await self._connection()
                results = await self._write(conn, batch)
            except Exception as error:
                if conn is not None:
                    await self._drop(conn)
                if attempt < self._attempts and is_transient_db_error(error):
                    delay = random.uniform(0, 0.02 * 2**attempt)
                    log.warning(
                        "commands_retry",
                        attempt=attempt,
                        batch=len(batch),
                        error=f"{type(error).__name__}: {error}"[:300],
                    )
                    await asyncio.sleep(delay)
                    continue
                log.error("commands_write_failed", batch=len(batch), error=type(error).__name__)
                raise
            self._idle.append(conn)
            self._on_commit()
            return results

    async def _connection(self) -> AsyncConnection:
        """A connection the write path keeps (no pool checkout, no pre-ping per batch;
        one per concurrent flush), in autocommit mode: `_ACCEPT` is one statement, so
        one transaction."""
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed:
                return conn
        conn = await self.db.engine.connect()
        return await conn.execution_options(isolation_level="AUTOCOMMIT")

    @staticmethod
    async def _drop(conn: AsyncConnection) -> None:
        with contextlib.suppress(Exception):
            await conn.invalidate()
        with contextlib.suppress(Exception):
            await conn.close()

    def _rows(self, batch: Sequence[_Pending]) -> tuple[bytes, bytes]:
        """`_ACCEPT`'s parameters: one JSON row per command, and the payloads."""
        rows: list[dict[str, Any]] = []
        payloads: list[bytes] = []
        start = 0
        prefix = self._prefix
        for n, pending in enumerate(batch):
            intent = pending.intent
            envelope = intent.envelope
            payload = intent.payload
            rows.append(
                {
                    "n": n,
                    "c": intent.command_id,
                    "u": intent.user_id,
                    "op": intent.operation,
                    "coid": intent.client_order_id,
                    "sym": intent.symbol,
                    "ik": pending.key,
                    "fp": intent.fingerprint if pending.key is not None else None,
                    "resp": intent.response,
                    "tp": prefix + envelope.topic,
                    "k": partition_key(envelope).decode(),
                    "hd": message_headers(envelope),
                    "st": start,
                    "sz": len(payload),
                }
            )
            payloads.append(payload)
            start += len(payload)
        return orjson.dumps(rows), b"".join(payloads)

    async def _write(
        self, conn: AsyncConnection, batch: Sequence[_Pending]
    ) -> list[Accepted | Exception]:
        rows, payloads = self._rows(batch)
        claimed = {
            str(row[0])
            for row in await conn.execute(_ACCEPT, {"rows": rows.decode(), "payloads": payloads})
        }
        others = [(n, p) for n, p in enumerate(batch) if p.intent.command_id not in claimed]
        existing = await self._existing(conn, others) if others else {}
        results: list[Accepted | Exception] = []
        for n, pending in enumerate(batch):
            if pending.intent.command_id in claimed:
                results.append(Accepted(pending.intent.response))
            else:
                results.append(self._replay(pending, existing.get(n)))
        return results

    @staticmethod
    async def _existing(
        conn: AsyncConnection, others: list[tuple[int, _Pending]]
    ) -> dict[int, tuple[str, str, dict[str, Any]]]:
        """The stored rows the unclaimed commands collided with (their own, after an
        ambiguous commit, or the first request with the same key). Read after the
        insert committed, so a concurrent first request is visible."""
        wanted = [
            {"n": n, "c": p.intent.command_id, "u": p.intent.user_id, "ik": p.key}
            for n, p in others
        ]
        own = {n: p.intent.command_id for n, p in others}
        found: dict[int, tuple[str, str, dict[str, Any]]] = {}
        for n, command_id, fingerprint, response in await conn.execute(
            _EXISTING, {"rows": orjson.dumps(wanted).decode()}
        ):
            # the row of this very command (an earlier attempt committed) wins
            if n not in found or str(command_id) == own[n]:
                found[n] = (str(command_id), fingerprint, response)
        return found

    @staticmethod
    def _replay(
        pending: _Pending, existing: tuple[str, str, dict[str, Any]] | None
    ) -> Accepted | Refusal:
        if existing is None:
            # the conflicting row vanished (pruned) between the insert and the read
            return Refusal(503, RefusalCode.UNAVAILABLE, "retry the request")
        command_id, fingerprint, response = existing
        if command_id == pending.intent.command_id:
            return Accepted(pending.intent.response)
        if fingerprint != pending.intent.fingerprint:
            return Refusal(
                422,
                RefusalCode.IDEMPOTENCY_KEY_REUSED,
                "this Idempotency-Key was used for another request",
                field="Idempotency-Key",
            )
        return Accepted(response, replayed=True)

    async def prune(self, older_than_s: float, *, now: datetime | None = None) -> int:
        """Forget commands (and their idempotency keys) older than ``older_than_s``."""
        cutoff = (now or datetime.now(UTC)) - timedelta(seconds=older_than_s)
        async with self.db.transaction() as session:
            result = await session.execute(_PRUNE, {"cutoff": cutoff})
        return int(getattr(result, "rowcount", 0) or 0)

    async def aclose(self) -> None:
        """Wait for the batches being written, then give the connection back."""
        await self._batches.aclose()
        idle, self._idle = self._idle, []
        for conn in idle:
            with contextlib.suppress(Exception):
                await conn.close()

    # -------------------------------------------------------------------- reads

    async def find_order(self, user_id: str, reference: str) -> KnownOrder | None:
        """The caller's order whose client order id or OPEX order id is ``reference``;
        else a PlaceOrder accepted here that no event has named yet; else None."""
        async with self.db.engine.connect() as conn:
            row = (await conn.execute(_FIND_ORDER, {"user": user_id, "ref": reference})).first()
        if row is None:
            return None
        _rank, client_order_id, order_id, symbol, status, terminal = row
        return KnownOrder(client_order_id, order_id, symbol, status, bool(terminal))

    async def find_position(
        self, user_id: str, reference: str, symbol: str | None
    ) -> KnownPosition | None:
        """The caller's position whose id is ``reference`` (or whose symbol is
        ``symbol``, the reference read as a symbol)."""
        async with self.db.engine.connect() as conn:
            row = (
                await conn.execute(
                    _FIND_POSITION, {"user": user_id, "ref": reference, "symbol": symbol}
                )
            ).first()
        if row is None:
            return None
        return KnownPosition(row[0], row[1], row[2])
