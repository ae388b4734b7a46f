"""The notifier's PostgreSQL schema: the users' streams and the latest state behind the
REST snapshots (migrations/versions/0002_streams.py).

`StreamStore.record` is the write path of a Kafka batch: one SQL statement (so one
transaction and one round trip), data-modifying CTEs doing in order:

1. the inbox (consumer ``notifier``, shared by every instance) claims each message id;
   a message already there is a duplicate and changes nothing;
2. each user's cursor moves by the number of its new events (users in sorted order, so
   concurrent writers lock in the same order) and the events take the seqs in between;
3. the events are appended to ``user_stream``, each with its rendered frame;
4. the latest state (orders, positions, balances, trading state) is upserted with the
   seq that last changed it.

Reads that must agree with a stream position (a resume, a snapshot) run in one
REPEATABLE READ transaction, so the cursor they report and the rows they return are the
same snapshot of the database.

The batch travels as one JSON parameter read by ``json_to_recordset``; each frame is
stored as ``head || seq || ',"data":' || data || ',"timestamp":"' || time || '"}'``,
the same text `StreamItem.frame` renders in Python around the seq the statement
assigns (``data`` is a ``json`` column, which PostgreSQL reproduces byte for byte).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.notifier.adapters.coalesce import Coalescer
from services.notifier.domain.events import (
    BalanceState,
    GlobalNotice,
    OrderState,
    PositionState,
    StreamItem,
    TradingStateState,
    frame_head,
)
from services.notifier.domain.stream import (
    Cursor,
    NotRecovered,
    Record,
    Recorded,
    Resume,
    ResumeDecision,
    Retention,
    StreamEntry,
    decide_resume,
    is_contiguous,
    new_epoch,
)
from shared.db import Database

__all__ = [
    "INBOX_CONSUMER",
    "AccountSnapshot",
    "Snapshot",
    "StreamStore",
]

INBOX_CONSUMER = "notifier"
"""The inbox's consumer name: the same for every instance, so a message recorded by one
instance is a duplicate for the others (README.md, Scale-out)."""
GLOBAL_TRADING_STATE = "trading_state"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Latest state at stream position ``seq`` of ``epoch``: stream from ``seq + 1``."""

    epoch: str
    seq: int
    items: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "epoch": self.epoch, "items": self.items}


@dataclass(frozen=True, slots=True)
class AccountSnapshot:
    epoch: str
    seq: int
    balances: list[dict[str, Any]]
    trading_state: dict[str, Any] | None
    global_trading_state: dict[str, Any] | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "epoch": self.epoch,
            "balances": self.balances,
            "trading_state": self.trading_state,
            "global_trading_state": self.global_trading_state,
        }


# ------------------------------------------------------------------------ statements

_RECORD = text(
    """
    WITH input AS (
        SELECT * FROM json_to_recordset(CAST(:rows AS json)) AS x(
            i int, m uuid, tp text, pt int, o bigint, u text, k text, c smallint,
            h text, d json, z text,
            oc text, os text, ost text, oterm boolean,
            ps text, pq numeric, bal jsonb, a boolean, gd jsonb)
    ), claimed AS (
        INSERT INTO inbox (consumer, message_id, topic, partition, "offset")
        SELECT :consumer, m, tp, pt, o FROM input ORDER BY m
        ON CONFLICT DO NOTHING
        RETURNING message_id
    ), fresh AS (
        SELECT input.* FROM input JOIN claimed ON claimed.message_id = input.m
    ), counts AS (
        SELECT u, count(*) AS n FROM fresh WHERE u IS NOT NULL GROUP BY u
    ), moved AS (
        INSERT INTO user_cursor AS cur (user_id, epoch, last_seq, floor_seq)
        SELECT u, substr(md5(random()::text || clock_timestamp()::text), 1, 12), n, 0
        FROM counts ORDER BY u
        ON CONFLICT (user_id) DO UPDATE
            SET last_seq = cur.last_seq + EXCLUDED.last_seq, updated_at = now()
        RETURNING user_id, epoch, last_seq
    ), numbered AS (
        SELECT f.*, mv.epoch,
               mv.last_seq - cn.n + row_number() OVER (PARTITION BY f.u ORDER BY f.i) AS seq
        FROM fresh f JOIN counts cn ON cn.u = f.u JOIN moved mv ON mv.user_id = f.u
    ), appended AS (
        INSERT INTO user_stream (user_id, seq, epoch, message_id, type, channel, payload)
        SELECT u, seq, epoch, m, k, c,
               h || seq::text || ',"data":' || d::text || ',"timestamp":"' || z || '"}'
        FROM numbered
    ), orders_up AS (
        INSERT INTO orders AS ord (user_id, client_order_id, symbol, status, terminal, seq,
                                   updated_at, data)
        SELECT DISTINCT ON (u, oc) u, oc, os, ost, oterm, seq, z::timestamptz, d::jsonb
        FROM numbered WHERE oc IS NOT NULL ORDER BY u, oc, seq DESC
        ON CONFLICT (user_id, client_order_id) DO UPDATE
            SET symbol = EXCLUDED.symbol, status = EXCLUDED.status,
                terminal = EXCLUDED.terminal, seq = EXCLUDED.seq,
                updated_at = EXCLUDED.updated_at, data = EXCLUDED.data
            WHERE NOT ord.terminal OR EXCLUDED.terminal
    ), positions_up AS (
        INSERT INTO positions AS pos (user_id, symbol, quantity, seq, updated_at, data)
        SELECT DISTINCT ON (u, ps) u, ps, pq, seq, z::timestamptz, d::jsonb
        FROM numbered WHERE ps IS NOT NULL ORDER BY u, ps, seq DESC
        ON CONFLICT (user_id, symbol) DO UPDATE
            SET quantity = EXCLUDED.quantity, seq = EXCLUDED.seq,
                updated_at = EXCLUDED.updated_at, data = EXCLUDED.data
    ), balances_up AS (
        INSERT INTO balances AS bal (user_id, asset, seq, updated_at, data)
        SELECT DISTINCT ON (n.u, e.value->>'asset')
               n.u, e.value->>'asset', n.seq, n.z::timestamptz, e.value
        FROM numbered n CROSS JOIN LATERAL jsonb_array_elements(n.bal) AS e(value)
        WHERE n.bal IS NOT NULL
        ORDER BY n.u, e.value->>'asset', n.seq DESC
        ON CONFLICT (user_id, asset) DO UPDATE
            SET seq = EXCLUDED.seq, updated_at = EXCLUDED.updated_at, data = EXCLUDED.data
    ), account_up AS (
        INSERT INTO account_state AS acc (user_id, seq, updated_at, data)
        SELECT DISTINCT ON (u) u, seq, z::timestamptz, d::jsonb
        FROM numbered WHERE a ORDER BY u, seq DESC
        ON CONFLICT (user_id) DO UPDATE
            SET seq = EXCLUDED.seq, updated_at = EXCLUDED.updated_at, data = EXCLUDED.data
    ), global_up AS (
        INSERT INTO global_state AS g (name, message_id, data)
        SELECT 'trading_state', m, gd
        FROM fresh WHERE gd IS NOT NULL ORDER BY i DESC LIMIT 1
        ON CONFLICT (name) DO UPDATE
            SET message_id = EXCLUDED.message_id, data = EXCLUDED.data, updated_at = now()
    )
    SELECT claimed.message_id, numbered.seq
    FROM claimed LEFT JOIN numbered ON numbered.m = claimed.message_id
    """
)
_READ_CURSOR = text("SELECT epoch, last_seq, floor_seq FROM user_cursor WHERE user_id = :user")
_GET_OR_CREATE_CURSORS = text(
    """
    WITH wanted AS (
        SELECT u, e FROM json_to_recordset(CAST(:rows AS json)) AS x(u text, e text)
    ), created AS (
        INSERT INTO user_cursor (user_id, epoch) SELECT u, e FROM wanted ORDER BY u
        ON CONFLICT DO NOTHING
        RETURNING user_id, epoch, last_seq, floor_seq
    )
    SELECT user_id, epoch, last_seq, floor_seq FROM created
    UNION ALL
    SELECT c.user_id, c.epoch, c.last_seq, c.floor_seq
    FROM user_cursor c JOIN wanted w ON w.u = c.user_id
    """
)
_RESUMES = text(
    """
    WITH wanted AS (
        SELECT * FROM json_to_recordset(CAST(:rows AS json)) AS x(u text, since bigint, upto bigint)
    )
    SELECT w.u, w.since, c.epoch, c.last_seq, c.floor_seq, s.seq, s.channel, s.payload
    FROM wanted w
    JOIN user_cursor c ON c.user_id = w.u
    LEFT JOIN user_stream s
        ON s.user_id = w.u AND s.seq > w.since AND s.seq <= LEAST(c.last_seq, w.upto)
    ORDER BY w.u, w.since, s.seq
    """
)
_READ_RANGE = text(
    """
    SELECT seq, channel, payload FROM user_stream
    WHERE user_id = :user AND seq > :after AND seq <= :through ORDER BY seq
    """
)
_BY_MESSAGE = text(
    """
    SELECT user_id, seq, channel, payload FROM user_stream
    WHERE message_id IN (SELECT value::uuid FROM json_array_elements_text(CAST(:ids AS json)))
    ORDER BY user_id, seq
    """
)
_LOCK_PRUNABLE = text(
    """
    SELECT c.user_id FROM user_cursor c
    WHERE c.last_seq - c.floor_seq > :keep
       OR EXISTS (SELECT 1 FROM user_stream s
                  WHERE s.user_id = c.user_id AND s.created_at < :cutoff)
    ORDER BY c.user_id LIMIT :limit FOR UPDATE
    """
)
_PRUNE = text(
    """
    WITH doomed AS (
        DELETE FROM user_stream s USING user_cursor c
        WHERE s.user_id IN (SELECT json_array_elements_text(CAST(:users AS json)))
          AND c.user_id = s.user_id
          AND (s.seq <= c.last_seq - :keep OR s.created_at < :cutoff)
        RETURNING s.user_id, s.seq
    ), floors AS (SELECT user_id, max(seq) AS top FROM doomed GROUP BY user_id)
    UPDATE user_cursor c SET floor_seq = GREATEST(c.floor_seq, f.top)
    FROM floors f WHERE c.user_id = f.user_id
    RETURNING (SELECT count(*) FROM doomed)
    """
)
_PRUNE_INBOX = text("DELETE FROM inbox WHERE consumer = :consumer AND processed_at < :cutoff")


def _row(index: int, record: Record) -> dict[str, Any]:
    """One input row of `_RECORD` (keys absent from a row read as NULL). The event's
    data travels once, as the JSON text already rendered for its frame (``d``, embedded
    as is): the statement builds the stored frame around it and reads the latest state
    (an order's, a position's, the trading state's ``data``) from it."""
    item = record.item
    row: dict[str, Any] = {
        "i": index,
        "m": str(item.message_id),
        "tp": record.topic,
        "pt": record.partition,
        "o": record.offset,
    }
    if isinstance(item, GlobalNotice):
        row["gd"] = item.data
        return row
    row.update(
        u=item.user_id, k=item.kind, c=item.channel, h=frame_head(item.kind, item.channel),
        d=orjson.Fragment(item.data_json), z=item.timestamp,
    )  # fmt: skip
    state = item.state
    if isinstance(state, OrderState):
        row.update(
            os=state.symbol, oc=state.client_order_id, ost=state.status, oterm=state.terminal
        )
    elif isinstance(state, PositionState):
        row.update(ps=state.symbol, pq=str(state.quantity))
    elif isinstance(state, BalanceState):
        row["bal"] = state.balances
    elif isinstance(state, TradingStateState):
        row["a"] = True
    return row


def _rows_json(records: Sequence[Record]) -> str:
    return orjson.dumps([_row(index, record) for index, record in enumerate(records)]).decode()


class StreamStore:
    """Reads and writes the notifier's schema through ``db``."""

    def __init__(
        self, db: Database, *, retention: Retention | None = None, max_replay: int = 10_000
    ) -> None:
        self.db = db
        self.retention = retention or Retention()
        self.max_replay = max_replay
        self._write_conn: AsyncConnection | None = None
        self._write_lock = asyncio.Lock()
        self._cursors: Coalescer[str, Cursor] = Coalescer(self._fetch_cursors, max_batch=500)
        self._resumes: Coalescer[tuple[str, int], tuple[Cursor, list[StreamEntry]]] = Coalescer(
            self._fetch_resumes, max_batch=50
        )

    # ------------------------------------------------------------------- writes

    async def record(self, records: Sequence[Record]) -> Recorded:
        """Record a batch atomically in one statement (see the module's docstring).
        ``records`` hold distinct message ids, in Kafka order per partition."""
        result = Recorded()
        if not records:
            return result
        rows = _rows_json(records)
        async with self._write_lock:
            conn = await self._writer()
            try:
                claimed = (
                    await conn.execute(_RECORD, {"consumer": INBOX_CONSUMER, "rows": rows})
                ).all()
            except BaseException:
                await self._drop_writer()
                raise
        seqs: dict[UUID, int | None] = {row[0]: row[1] for row in claimed}
        for record in records:
            item = record.item
            if item.message_id not in seqs:
                if isinstance(item, StreamItem):
                    result.duplicates.append(item)
            elif isinstance(item, GlobalNotice):
                result.notices.append(item)
            else:
                seq = seqs[item.message_id]
                assert seq is not None
                result.entries.append(StreamEntry(item.user_id, seq, item.channel, item.frame(seq)))
        return result

    async def _writer(self) -> AsyncConnection:
        """The connection the write path keeps (no pool checkout, no pre-ping per batch);
        each `_RECORD` runs in autocommit mode, one statement being one transaction."""
        if self._write_conn is None or self._write_conn.closed:
            conn = await self.db.engine.connect()
            self._write_conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        return self._write_conn

    async def _drop_writer(self) -> None:
        conn, self._write_conn = self._write_conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.invalidate()
            with contextlib.suppress(Exception):
                await conn.close()

    async def aclose(self) -> None:
        """Give the write connection back (before `Database.dispose`)."""
        async with self._write_lock:
            conn, self._write_conn = self._write_conn, None
            if conn is not None:
                await conn.close()

    async def prune(self, *, now: datetime | None = None, limit: int = 1000) -> int:
        """Apply retention to up to ``limit`` users; returns the events deleted."""
        cutoff = (now or datetime.now(UTC)) - timedelta(seconds=self.retention.seconds)
        keep = self.retention.events
        async with self.db.transaction() as session:
            users = [
                row[0]
                for row in await session.execute(
                    _LOCK_PRUNABLE, {"keep": keep, "cutoff": cutoff, "limit": limit}
                )
            ]
            if not users:
                return 0
            deleted = (
                await session.execute(
                    _PRUNE, {"users": json.dumps(users), "keep": keep, "cutoff": cutoff}
                )
            ).first()
        return int(deleted[0]) if deleted is not None else 0

    async def prune_inbox(self, older_than_s: float, *, now: datetime | None = None) -> int:
        cutoff = (now or datetime.now(UTC)) - timedelta(seconds=older_than_s)
        async with self.db.transaction() as session:
            result = await session.execute(
                _PRUNE_INBOX, {"consumer": INBOX_CONSUMER, "cutoff": cutoff}
            )
        return int(getattr(result, "rowcount", 0) or 0)

    async def reset_stream(self, user_id: str) -> Cursor:
        """Start ``user_id``'s stream over in a new epoch (its events are dropped; the
        latest state is kept). Every client of the old epoch is told to reload."""
        epoch = new_epoch()
        async with self.db.transaction() as session:
            await session.execute(
                text("DELETE FROM user_stream WHERE user_id = :u"), {"u": user_id}
            )
            await session.execute(
                text(
                    """
                    INSERT INTO user_cursor (user_id, epoch) VALUES (:u, :e)
                    ON CONFLICT (user_id) DO UPDATE
                        SET epoch = :e, last_seq = 0, floor_seq = 0, updated_at = now()
                    """
                ),
                {"u": user_id, "e": epoch},
            )
        return Cursor(epoch)

    # -------------------------------------------------------------------- reads

    @asynccontextmanager
    async def _snapshot(self) -> AsyncIterator[AsyncConnection]:
        async with self.db.engine.connect() as conn:
            conn = await conn.execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            )
            async with conn.begin():
                yield conn

    async def _cursor(self, conn: AsyncConnection, user_id: str) -> Cursor | None:
        row = (await conn.execute(_READ_CURSOR, {"user": user_id})).first()
        return None if row is None else Cursor(row[0], int(row[1]), int(row[2]))

    @asynccontextmanager
    async def _autocommit(self) -> AsyncIterator[AsyncConnection]:
        """A connection for one-statement reads: no BEGIN / COMMIT round trips (a single
        statement sees one consistent snapshot anyway)."""
        async with self.db.engine.connect() as conn:
            yield await conn.execution_options(isolation_level="AUTOCOMMIT")

    async def cursor(self, user_id: str) -> Cursor:
        """``user_id``'s cursor, created (new epoch, seq 0) if the user has none.
        Concurrent calls share one statement (`Coalescer`)."""
        for _ in range(3):
            try:
                return await self._cursors.load(user_id)
            except LookupError:  # created by another writer while the statement ran
                continue
        raise RuntimeError(f"no cursor for user {user_id}")  # pragma: no cover

    async def _fetch_cursors(self, users: Sequence[str]) -> dict[str, Cursor]:
        rows = json.dumps([{"u": user, "e": new_epoch()} for user in users])
        async with self._autocommit() as conn:
            result = await conn.execute(_GET_OR_CREATE_CURSORS, {"rows": rows})
            return {row[0]: Cursor(row[1], int(row[2]), int(row[3])) for row in result}

    async def resume(
        self, user_id: str, since: int | None, epoch: str | None
    ) -> tuple[Cursor, ResumeDecision, list[StreamEntry]]:
        """The cursor, the resume decision and, when recovered, the events to replay,
        read by one statement (one snapshot), shared with concurrent resumes."""
        if since is None:
            cursor = await self.cursor(user_id)
            return cursor, decide_resume(cursor, None, None), []
        try:
            cursor, replay = await self._resumes.load((user_id, since))
        except LookupError:  # no stream yet: whatever the client holds is not ours
            cursor = await self.cursor(user_id)
            return cursor, decide_resume(cursor, since, epoch, max_replay=self.max_replay), []
        decision = decide_resume(cursor, since, epoch, max_replay=self.max_replay)
        if decision.outcome is not Resume.RECOVERED:
            return cursor, decision, []
        if not is_contiguous([e.seq for e in replay], decision.start_after, decision.replay_to):
            lost = ResumeDecision(
                Resume.NOT_RECOVERED, cursor.last_seq, reason=NotRecovered.TOO_OLD
            )
            return cursor, lost, []
        return cursor, decision, replay

    async def _fetch_resumes(
        self, keys: Sequence[tuple[str, int]]
    ) -> dict[tuple[str, int], tuple[Cursor, list[StreamEntry]]]:
        rows = json.dumps(
            [
                {"u": user, "since": since, "upto": since + self.max_replay + 1}
                for user, since in keys
            ]
        )
        found: dict[tuple[str, int], tuple[Cursor, list[StreamEntry]]] = {}
        async with self._autocommit() as conn:
            for user, since, epoch, last, floor, seq, channel, payload in await conn.execute(
                _RESUMES, {"rows": rows}
            ):
                key = (user, int(since))
                if key not in found:
                    found[key] = (Cursor(epoch, int(last), int(floor)), [])
                if seq is not None:
                    found[key][1].append(StreamEntry(user, int(seq), int(channel), payload))
        return found

    async def read_range(self, user_id: str, after: int, through: int) -> list[StreamEntry]:
        """Events ``after + 1 .. through`` of ``user_id`` (fewer if pruned)."""
        async with self._autocommit() as conn:
            rows = await conn.execute(
                _READ_RANGE, {"user": user_id, "after": after, "through": through}
            )
            return [StreamEntry(user_id, int(seq), int(ch), payload) for seq, ch, payload in rows]

    async def entries_for(self, message_ids: Sequence[UUID]) -> list[StreamEntry]:
        """The recorded events of these messages, by user and seq."""
        if not message_ids:
            return []
        async with self._snapshot() as conn:
            rows = await conn.execute(
                _BY_MESSAGE, {"ids": json.dumps([str(m) for m in message_ids])}
            )
            return [
                StreamEntry(user_id, int(seq), int(channel), payload)
                for user_id, seq, channel, payload in rows
            ]

    async def orders_snapshot(
        self,
        user_id: str,
        *,
        symbol: str | None = None,
        statuses: Sequence[str] | None = None,
        terminal: bool | None = None,
        limit: int = 100,
    ) -> Snapshot:
        """The user's orders, most recently changed first."""
        where = ["user_id = :user"]
        params: dict[str, Any] = {"user": user_id, "limit": limit}
        if symbol is not None:
            where.append("symbol = :symbol")
            params["symbol"] = symbol
        if statuses is not None:
            where.append("status = ANY(CAST(:statuses AS text[]))")
            params["statuses"] = list(statuses)
        if terminal is not None:
            where.append("terminal = :terminal")
            params["terminal"] = terminal
        query = text(
            f"SELECT seq, data FROM orders WHERE {' AND '.join(where)} "  # noqa: S608 - fixed fragments
            "ORDER BY seq DESC LIMIT :limit"
        )
        return await self._items(user_id, query, params)

    async def positions_snapshot(self, user_id: str, *, symbol: str | None = None) -> Snapshot:
        """The user's open positions (quantity not zero), by symbol."""
        where = "user_id = :user AND quantity <> 0"
        params: dict[str, Any] = {"user": user_id}
        if symbol is not None:
            where += " AND symbol = :symbol"
            params["symbol"] = symbol
        query = text(f"SELECT seq, data FROM positions WHERE {where} ORDER BY symbol")  # noqa: S608
        return await self._items(user_id, query, params)

    async def _items(self, user_id: str, query: Any, params: dict[str, Any]) -> Snapshot:
        await self.cursor(user_id)  # a user with no event yet still has an epoch
        async with self._snapshot() as conn:
            cursor = await self._cursor(conn, user_id)
            assert cursor is not None
            rows = await conn.execute(query, params)
            items = [{**data, "seq": int(seq)} for seq, data in rows]
        return Snapshot(cursor.epoch, cursor.last_seq, items)

    async def account_snapshot(self, user_id: str) -> AccountSnapshot:
        await self.cursor(user_id)
        async with self._snapshot() as conn:
            cursor = await self._cursor(conn, user_id)
            assert cursor is not None
            balances = [
                {**data, "seq": int(seq)}
                for seq, data in await conn.execute(
                    text("SELECT seq, data FROM balances WHERE user_id = :u ORDER BY asset"),
                    {"u": user_id},
                )
            ]
            state = (
                await conn.execute(
                    text("SELECT seq, data FROM account_state WHERE user_id = :u"), {"u": user_id}
                )
            ).first()
            global_state = (
                await conn.execute(
                    text("SELECT data FROM global_state WHERE name = :n"),
                    {"n": GLOBAL_TRADING_STATE},
                )
            ).first()
        return AccountSnapshot(
            cursor.epoch,
            cursor.last_seq,
            balances,
            None if state is None else {**state[1], "seq": int(state[0])},
            None if global_state is None else dict(global_state[0]),
        )
