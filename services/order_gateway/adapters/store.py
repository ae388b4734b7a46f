"""Reads and writes of the ``orders`` table: a `GatewayOrder` as a JSON document (money
as decimal strings) plus the columns the queries need."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson
from sqlalchemy import or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.order_gateway.adapters.tables import orders
from services.order_gateway.domain.book import Tracked
from services.order_gateway.domain.orders import GatewayOrder
from shared.contracts import OrderStatus, OrderType, Side, TimeInForce

__all__ = ["from_state", "insert_new", "load", "to_state", "upsert"]

_DECIMALS = ("quantity", "price", "stop_price", "send_price", "filled_quantity", "filled_notional")


def _dec(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def to_state(order: GatewayOrder) -> dict[str, Any]:
    """The order as a JSON-ready document (`from_state` reads it back equal)."""
    return {
        "client_order_id": order.client_order_id,
        "user_id": order.user_id,
        "symbol": order.symbol,
        "side": order.side.value,
        "order_type": order.order_type.value,
        "time_in_force": order.time_in_force.value,
        **{name: _dec(getattr(order, name)) for name in _DECIMALS},
        "created_at_ms": order.created_at_ms,
        "status": order.status.value,
        "held": order.held,
        "send_time_in_force": order.send_time_in_force.value if order.send_time_in_force else None,
        "submitted_at_ms": order.submitted_at_ms,
        "opex_order_id": order.opex_order_id,
        "fees": {asset: _dec(fee) for asset, fee in sorted(order.fees.items())},
        "seen_trade_ids": sorted(order.seen_trade_ids),
        "cancel_requested": order.cancel_requested,
        "external": order.external,
    }


def from_state(doc: dict[str, Any]) -> GatewayOrder:
    def dec(name: str) -> Decimal | None:
        value = doc.get(name)
        return None if value is None else Decimal(value)

    tif = doc.get("send_time_in_force")
    return GatewayOrder(
        client_order_id=doc["client_order_id"],
        user_id=doc["user_id"],
        symbol=doc["symbol"],
        side=Side(doc["side"]),
        order_type=OrderType(doc["order_type"]),
        time_in_force=TimeInForce(doc["time_in_force"]),
        quantity=Decimal(doc["quantity"]),
        price=dec("price"),
        stop_price=dec("stop_price"),
        created_at_ms=int(doc["created_at_ms"]),
        status=OrderStatus(doc["status"]),
        held=bool(doc["held"]),
        send_price=dec("send_price"),
        send_time_in_force=TimeInForce(tif) if tif else None,
        submitted_at_ms=doc.get("submitted_at_ms"),
        opex_order_id=doc.get("opex_order_id"),
        filled_quantity=dec("filled_quantity") or Decimal(0),
        filled_notional=dec("filled_notional") or Decimal(0),
        fees={asset: Decimal(fee) for asset, fee in doc.get("fees", {}).items()},
        seen_trade_ids=set(doc.get("seen_trade_ids", ())),
        cancel_requested=bool(doc.get("cancel_requested", False)),
        external=bool(doc.get("external", False)),
    )


def _rows(items: Sequence[Tracked]) -> str:
    return orjson.dumps(
        [
            {
                "client_order_id": t.order.client_order_id,
                "user_id": t.order.user_id,
                "opex_order_id": t.order.opex_order_id,
                "status": t.order.status.value,
                "is_open": t.order.is_open,
                "state": to_state(t.order),
                "correlation_id": str(t.correlation_id) if t.correlation_id else None,
                "causation_id": str(t.causation_id) if t.causation_id else None,
                "created_at_ms": t.order.created_at_ms,
            }
            for t in items
        ]
    ).decode()


_INSERT_NEW = text(
    """
    INSERT INTO orders (client_order_id, user_id, opex_order_id, status, is_open, state, correlation_id, causation_id, created_at_ms)
    SELECT client_order_id, user_id, opex_order_id, status, is_open, state, correlation_id, causation_id, created_at_ms
    FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS x(
        client_order_id text, user_id text, opex_order_id text, status text, is_open boolean,
        state jsonb, correlation_id uuid, causation_id uuid, created_at_ms bigint)
    ON CONFLICT (client_order_id) DO NOTHING
    RETURNING client_order_id
    """
)
_UPSERT = text(
    """
    INSERT INTO orders (client_order_id, user_id, opex_order_id, status, is_open, state, correlation_id, causation_id, created_at_ms)
    SELECT client_order_id, user_id, opex_order_id, status, is_open, state, correlation_id, causation_id, created_at_ms
    FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS x(
        client_order_id text, user_id text, opex_order_id text, status text, is_open boolean,
        state jsonb, correlation_id uuid, causation_id uuid, created_at_ms bigint)
    ON CONFLICT (client_order_id) DO UPDATE SET
        opex_order_id = EXCLUDED.opex_order_id, status = EXCLUDED.status,
        is_open = EXCLUDED.is_open, state = EXCLUDED.state, updated_at = now()
    """
)


async def insert_new(session: AsyncSession, items: Sequence[Tracked]) -> set[str]:
    """Insert orders the table does not hold yet; the client order ids inserted."""
    if not items:
        return set()
    result = await session.execute(_INSERT_NEW, {"rows": _rows(items)})
    return {row[0] for row in result}


async def upsert(session: AsyncSession, items: Sequence[Tracked]) -> None:
    """Write each order's current state (one statement)."""
    unique = {t.client_order_id: t for t in items}
    if unique:
        await session.execute(_UPSERT, {"rows": _rows(list(unique.values()))})


async def load(session: AsyncSession, *, finished_since_ms: int) -> list[Tracked]:
    """Every open order, and the finished ones created since ``finished_since_ms``."""
    result = await session.execute(
        select(orders.c.state, orders.c.correlation_id, orders.c.causation_id).where(
            or_(orders.c.is_open, orders.c.created_at_ms >= finished_since_ms)
        )
    )
    out: list[Tracked] = []
    for state, correlation_id, causation_id in result:
        order = from_state(state)
        out.append(
            Tracked(
                order,
                correlation_id=correlation_id if isinstance(correlation_id, UUID) else None,
                causation_id=causation_id if isinstance(causation_id, UUID) else None,
            )
        )
    return out
