"""Reads and writes of the risk engine's own tables (no decisions here)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, fields
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import func, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.risk_engine.adapters.tables import control_requests, journal, last_tickers, limits
from services.risk_engine.config import LimitOverrides, RiskLimits
from shared.contracts import TradingState
from shared.db import Database

GLOBAL = "global"


@dataclass(frozen=True)
class JournalRow:
    user_id: str | None
    at_ms: int
    payload: bytes


# The rows' small fields travel as one JSON document; their payloads as one bytea,
# cut out by offset (no JSON escaping of every payload).
_APPEND = text(
    """
    INSERT INTO journal (user_id, at_ms, payload)
    SELECT user_id, at_ms, substring(CAST(:payloads AS bytea) FROM start + 1 FOR size)
    FROM jsonb_to_recordset(CAST(:rows AS jsonb))
        AS x(n int, user_id text, at_ms bigint, start int, size int)
    ORDER BY n
    """
)


async def append_journal(session: AsyncSession, rows: Sequence[JournalRow]) -> None:
    """Append in order (one statement; ``seq`` follows the array order)."""
    if rows:
        document = []
        start = 0
        for n, r in enumerate(rows):
            size = len(r.payload)
            document.append(
                {"n": n, "user_id": r.user_id, "at_ms": r.at_ms, "start": start, "size": size}
            )
            start += size
        payloads = b"".join(r.payload for r in rows)
        await session.execute(
            _APPEND, {"rows": orjson.dumps(document).decode(), "payloads": payloads}
        )


async def read_journal(db: Database, *, chunk: int = 5000) -> AsyncIterator[JournalRow]:
    """Every journal row in the order it was written."""
    last = 0
    while True:
        async with db.transaction() as session:
            rows = (
                await session.execute(
                    select(journal.c.seq, journal.c.user_id, journal.c.at_ms, journal.c.payload)
                    .where(journal.c.seq > last)
                    .order_by(journal.c.seq)
                    .limit(chunk)
                )
            ).all()
        if not rows:
            return
        for row in rows:
            yield JournalRow(row.user_id, row.at_ms, row.payload)
        last = rows[-1].seq


async def save_tickers(session: AsyncSession, latest: dict[str, bytes]) -> None:
    """Keep the newest ticker of each symbol (encoded envelope)."""
    if latest:
        stmt = pg_insert(last_tickers).values(
            [{"symbol": symbol, "payload": payload} for symbol, payload in latest.items()]
        )
        await session.execute(
            stmt.on_conflict_do_update(
                index_elements=[last_tickers.c.symbol], set_={"payload": stmt.excluded.payload}
            )
        )


async def load_tickers(session: AsyncSession) -> list[bytes]:
    return [row.payload for row in (await session.execute(select(last_tickers.c.payload))).all()]


def overrides_to_json(overrides: LimitOverrides) -> dict[str, str | int]:
    return {
        item.name: str(value) if isinstance(value, Decimal) else value
        for item in fields(overrides)
        if (value := getattr(overrides, item.name)) is not None
    }


def overrides_from_json(data: dict[str, Any]) -> LimitOverrides:
    """Overrides from their stored JSON; unknown keys are ignored (an older row)."""
    kinds = {item.name: item.type for item in fields(LimitOverrides)}
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in kinds or value is None:
            continue
        values[key] = int(value) if "int" in str(kinds[key]) else Decimal(str(value))
    return LimitOverrides(**values)


async def load_limits(
    session: AsyncSession, base: RiskLimits
) -> tuple[RiskLimits, dict[str, LimitOverrides]]:
    """The global limits (``base`` with the stored global overrides) and each user's."""
    global_limits = base
    users: dict[str, LimitOverrides] = {}
    for row in (await session.execute(select(limits.c.scope, limits.c.overrides))).all():
        overrides = overrides_from_json(row.overrides)
        if row.scope == GLOBAL:
            global_limits = overrides.apply(base)
        elif row.scope.startswith("user:"):
            users[row.scope.removeprefix("user:")] = overrides
    return global_limits, users


async def limits_version(session: AsyncSession) -> tuple[int, Any]:
    """Changes when any limit row changes (count and newest update)."""
    row = (await session.execute(select(func.count(), func.max(limits.c.updated_at)))).one()
    return int(row[0]), row[1]


async def save_limits(
    session: AsyncSession, scope: str, overrides: LimitOverrides, updated_by: str
) -> None:
    stmt = pg_insert(limits).values(
        scope=scope,
        overrides=overrides_to_json(overrides),
        updated_by=updated_by,
        updated_at=func.now(),
    )
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[limits.c.scope],
            set_={
                "overrides": stmt.excluded.overrides,
                "updated_by": stmt.excluded.updated_by,
                "updated_at": func.now(),
            },
        )
    )


async def request_state(
    session: AsyncSession,
    state: TradingState,
    *,
    user_id: str | None,
    requested_by: str,
    reason: str,
) -> None:
    await session.execute(
        insert(control_requests).values(
            user_id=user_id, state=state.value, requested_by=requested_by, reason=reason
        )
    )


@dataclass(frozen=True)
class ControlRequest:
    id: int
    user_id: str | None
    state: TradingState
    requested_by: str
    reason: str


async def take_control_requests(session: AsyncSession) -> list[ControlRequest]:
    """Pending trading-state requests, oldest first, marked applied in this transaction."""
    rows = (
        await session.execute(
            select(control_requests)
            .where(control_requests.c.applied_at.is_(None))
            .order_by(control_requests.c.id)
            .with_for_update(skip_locked=True)
        )
    ).all()
    if rows:
        await session.execute(
            update(control_requests)
            .where(control_requests.c.id.in_([r.id for r in rows]))
            .values(applied_at=func.now())
        )
    return [
        ControlRequest(r.id, r.user_id, TradingState(r.state), r.requested_by, r.reason)
        for r in rows
    ]
