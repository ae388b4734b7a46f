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

Concurrent submissions share one transaction (group commit): while one batch is being
written the next ones queue, so the cost of a commit is spread over every request that
arrived meanwhile. A failed batch is retried when the failure is transient; every
row's command id is fixed, so a retry after an ambiguous commit finds its own rows and
answers as if it had inserted them.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.notifier.domain.refusals import Refusal, RefusalCode
from services.notifier.domain.trading import Intent, KnownOrder, KnownPosition
from shared.db import Database, is_transient_db_error
from shared.messaging import stage

__all__ = ["Accepted", "CommandStore"]

log = structlog.get_logger(__name__)

_CLAIM = text(
    """
    INSERT INTO commands (command_id, user_id, operation, client_order_id, symbol,
                          idempotency_key, fingerprint, response)
    SELECT c, u, op, coid, sym, ik, fp, resp
    FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS x(
        n int, c uuid, u text, op text, coid text, sym text, ik text, fp text, resp jsonb)
    ORDER BY n
    ON CONFLICT DO NOTHING
    RETURNING command_id
    """
)
_EXISTING = text(
    """
    SELECT x.n, cm.command_id, cm.fingerprint, cm.response
    FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS x(n int, c uuid, u text, ik text)
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


@dataclass(slots=True)
class _Pending:
    intent: Intent
    key: str | None
    future: asyncio.Future[Accepted]


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
        attempts: int = 3,
    ) -> None:
        self.db = db
        self._prefix = topic_prefix
        self._on_commit = on_commit
        self._max_batch = max_batch
        self._attempts = attempts
        self._queue: list[_Pending] = []
        self._writer: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------- writes

    async def submit(self, intent: Intent, idempotency_key: str | None = None) -> Accepted:
        """Store ``intent`` and its outbox row (one transaction shared with concurrent
        submissions); `Refusal` 422 when the key was used for another request."""
        future: asyncio.Future[Accepted] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(intent, idempotency_key, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain(), name="notifier-commands")
        return await future

    async def _drain(self) -> None:
        while self._queue:
            batch = self._queue[: self._max_batch]
            del self._queue[: self._max_batch]
            try:
                results = await self._write_with_retries(batch)
            except Exception as error:
                for pending in batch:
                    if not pending.future.done():
                        pending.future.set_exception(error)
                continue
            for pending, result in zip(batch, results, strict=True):
                if pending.future.done():
                    continue
                if isinstance(result, Refusal):
                    pending.future.set_exception(result)
                else:
                    pending.future.set_result(result)

    async def _write_with_retries(self, batch: list[_Pending]) -> list[Accepted | Refusal]:
        attempt = 0
        while True:
            attempt += 1
            try:
                results = await self._write(batch)
            except Exception as error:
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
            self._on_commit()
            return results

    async def _write(self, batch: Sequence[_Pending]) -> list[Accepted | Refusal]:
        rows = [
            {
                "n": n,
                "c": p.intent.command_id,
                "u": p.intent.user_id,
                "op": p.intent.operation,
                "coid": p.intent.client_order_id,
                "sym": p.intent.symbol,
                "ik": p.key,
                "fp": p.intent.fingerprint,
                "resp": p.intent.response,
            }
            for n, p in enumerate(batch)
        ]
        async with self.db.transaction() as session:
            claimed = {
                str(row[0])
                for row in await session.execute(
                    _CLAIM, {"rows": json.dumps(rows, separators=(",", ":"))}
                )
            }
            fresh = [p for p in batch if p.intent.command_id in claimed]
            await stage(
                session,
                [(p.intent.envelope, None, p.intent.payload) for p in fresh],
                topic_prefix=self._prefix,
            )
            others = [row for row in rows if row["c"] not in claimed]
            existing = await self._existing(session, others) if others else {}
        results: list[Accepted | Refusal] = []
        for n, pending in enumerate(batch):
            if pending.intent.command_id in claimed:
                results.append(Accepted(pending.intent.response))
            else:
                results.append(self._replay(pending, existing.get(n)))
        return results

    async def _existing(
        self, session: AsyncSession, rows: list[dict[str, Any]]
    ) -> dict[int, tuple[str, str, dict[str, Any]]]:
        wanted = [{"n": r["n"], "c": r["c"], "u": r["u"], "ik": r["ik"]} for r in rows]
        own = {int(r["n"]): str(r["c"]) for r in rows}
        found: dict[int, tuple[str, str, dict[str, Any]]] = {}
        for n, command_id, fingerprint, response in await session.execute(
            _EXISTING, {"rows": json.dumps(wanted, separators=(",", ":"))}
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
        """Wait for the batch being written (shutdown)."""
        if self._writer is not None and not self._writer.done():
            await asyncio.wait([self._writer], timeout=5)

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
