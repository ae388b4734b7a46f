"""The ``orders`` table against real PostgreSQL (a migrated gateway schema): an order's
JSON document round trip, insert-if-new, upsert, what load returns, and the unique OPEX
order id."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import exc as sa_exc
from sqlalchemy import select, text

from services.order_gateway.adapters import store
from services.order_gateway.adapters.tables import orders
from services.order_gateway.domain import ExchangeStatus, GatewayOrder, ListedOrder
from services.order_gateway.domain.book import Tracked
from shared.contracts import OrderStatus, OrderType, Side, TimeInForce
from shared.db import Database

pytestmark = pytest.mark.integration

S = OrderStatus
D = Decimal
T0 = 1_767_225_600_000


@pytest.fixture
async def db(database_url: str, schemas: tuple[str, str]) -> AsyncIterator[Database]:
    database = Database(database_url, schemas[0], pool_size=2)
    try:
        yield database
    finally:
        await database.dispose()


# --------------------------------------------------------------------- strategies

_ids = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\x00", exclude_categories=["Cs"]),
    min_size=1,
    max_size=64,
)


@st.composite
def _decimals(draw: st.DrawFn, *, positive: bool = True) -> Decimal:
    """Exact decimals with up to 40 significant digits and scales from 1e-30 to 1e10."""
    digits = draw(st.integers(min_value=1 if positive else 0, max_value=10**40 - 1))
    exponent = draw(st.integers(min_value=-30, max_value=10))
    return Decimal(digits).scaleb(exponent)


@st.composite
def gateway_orders(draw: st.DrawFn) -> GatewayOrder:
    optional = st.none() | _decimals()
    return GatewayOrder(
        client_order_id=draw(_ids),
        user_id=draw(_ids),
        symbol=draw(st.sampled_from(["BTC_USDT", "ETH_USDT", "SHIB_USDT"])),
        side=draw(st.sampled_from(Side)),
        order_type=draw(st.sampled_from(OrderType)),
        time_in_force=draw(st.sampled_from(TimeInForce)),
        quantity=draw(_decimals()),
        price=draw(optional),
        stop_price=draw(optional),
        created_at_ms=draw(st.integers(min_value=0, max_value=2**62)),
        status=draw(st.sampled_from(OrderStatus)),
        held=draw(st.booleans()),
        send_price=draw(optional),
        send_time_in_force=draw(st.none() | st.sampled_from(TimeInForce)),
        submitted_at_ms=draw(st.none() | st.integers(min_value=0, max_value=2**62)),
        opex_order_id=draw(st.none() | st.integers(min_value=0, max_value=2**63).map(str)),
        filled_quantity=draw(_decimals(positive=False)),
        filled_notional=draw(_decimals(positive=False)),
        fees=draw(
            st.dictionaries(
                st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=10),
                _decimals(positive=False),
                max_size=4,
            )
        ),
        seen_trade_ids=draw(st.sets(_ids, max_size=8)),
        cancel_requested=draw(st.booleans()),
        external=draw(st.booleans()),
    )


def _order(
    cid: str,
    *,
    user: str = "u1",
    status: OrderStatus = S.PENDING_SUBMIT,
    opex_order_id: str | None = None,
    created_at_ms: int = T0,
) -> GatewayOrder:
    return GatewayOrder(
        client_order_id=cid,
        user_id=user,
        symbol="BTC_USDT",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        time_in_force=TimeInForce.GTC,
        quantity=D("0.5"),
        price=D("30000.01"),
        created_at_ms=created_at_ms,
        status=status,
        opex_order_id=opex_order_id,
    )


async def _rows(db: Database) -> dict[str, dict[str, Any]]:
    async with db.transaction() as session:
        result = await session.execute(select(orders))
        return {row.client_order_id: dict(row._mapping) for row in result}


async def _load(db: Database, finished_since_ms: int = -1) -> dict[str, Tracked]:
    async with db.transaction() as session:
        items = await store.load(session, finished_since_ms=finished_since_ms)
    return {t.client_order_id: t for t in items}


# --------------------------------------------------------------------- round trip


@settings(max_examples=100, deadline=None)
@given(order=gateway_orders())
def test_to_state_when_any_order_then_json_and_back_equal(order: GatewayOrder) -> None:
    document = json.loads(json.dumps(store.to_state(order)))
    assert store.from_state(document) == order


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(order=gateway_orders(), correlation=st.none() | st.uuids(), causation=st.none() | st.uuids())
async def test_upsert_then_load_when_any_order_then_equal(
    db: Database, order: GatewayOrder, correlation: uuid.UUID | None, causation: uuid.UUID | None
) -> None:
    async with db.transaction() as session:
        await session.execute(text("DELETE FROM orders"))
        await store.upsert(
            session, [Tracked(order, correlation_id=correlation, causation_id=causation)]
        )
    [loaded] = (await _load(db)).values()
    assert loaded.order == order
    assert loaded.correlation_id == correlation
    assert loaded.causation_id == causation
    row = (await _rows(db))[order.client_order_id]
    assert row["status"] == order.status.value
    assert row["is_open"] is order.is_open
    assert row["opex_order_id"] == order.opex_order_id
    assert row["user_id"] == order.user_id
    assert row["created_at_ms"] == order.created_at_ms


# ----------------------------------------------------------------------- insert_new


async def test_insert_new_when_already_held_then_not_inserted_nor_changed(db: Database) -> None:
    first = Tracked(_order("c1"), correlation_id=uuid.uuid4(), causation_id=uuid.uuid4())
    async with db.transaction() as session:
        assert await store.insert_new(session, [first]) == {"c1"}
    again = Tracked(_order("c1", status=S.SUBMITTED, opex_order_id="77"))
    fresh = Tracked(_order("c2"))
    async with db.transaction() as session:
        assert await store.insert_new(session, [again, fresh]) == {"c2"}
    async with db.transaction() as session:
        assert await store.insert_new(session, []) == set()
    rows = await _rows(db)
    assert set(rows) == {"c1", "c2"}
    assert rows["c1"]["status"] == "PENDING_SUBMIT"
    assert rows["c1"]["opex_order_id"] is None
    assert rows["c1"]["correlation_id"] == first.correlation_id
    assert rows["c1"]["causation_id"] == first.causation_id
    assert store.from_state(rows["c1"]["state"]) == first.order


async def test_insert_new_when_batch_repeats_an_id_then_inserted_once(db: Database) -> None:
    async with db.transaction() as session:
        inserted = await store.insert_new(session, [Tracked(_order("c1")), Tracked(_order("c1"))])
    assert inserted == {"c1"}
    assert list(await _rows(db)) == ["c1"]


# --------------------------------------------------------------------------- upsert


async def test_upsert_when_held_then_state_status_open_and_opex_id_overwritten(
    db: Database,
) -> None:
    correlation, causation = uuid.uuid4(), uuid.uuid4()
    tracked = Tracked(_order("c1"), correlation_id=correlation, causation_id=causation)
    async with db.transaction() as session:
        await store.insert_new(session, [tracked])
    before = (await _rows(db))["c1"]
    order = tracked.order
    order.begin_submit(D("30000.01"), TimeInForce.GTC, T0 + 5)
    order.on_submit_sent()
    order.on_listed(
        ListedOrder(
            order_id="9001",
            symbol="BTC_USDT",
            side=Side.BUY,
            price=D("30000.01"),
            quantity=D("0.5"),
            status=ExchangeStatus.CANCELED,
            time_ms=T0 + 6,
        )
    )
    assert order.status is S.CANCELED
    # what the row was created with stays, even when a later write says otherwise
    later = Tracked(order, correlation_id=uuid.uuid4(), causation_id=None)
    async with db.transaction() as session:
        await store.upsert(session, [later])
    row = (await _rows(db))["c1"]
    assert row["status"] == "CANCELED"
    assert row["is_open"] is False
    assert row["opex_order_id"] == "9001"
    assert store.from_state(row["state"]) == order
    assert row["correlation_id"] == correlation
    assert row["causation_id"] == causation
    assert row["created_at_ms"] == T0
    assert row["updated_at"] > before["updated_at"]


async def test_upsert_when_same_order_twice_in_one_call_then_last_written(db: Database) -> None:
    first = _order("c1")
    second = _order("c1", status=S.SUBMITTED)
    async with db.transaction() as session:
        await store.upsert(session, [Tracked(first), Tracked(second)])
        await store.upsert(session, [])
    row = (await _rows(db))["c1"]
    assert row["status"] == "SUBMITTED"
    assert store.from_state(row["state"]) == second


# ----------------------------------------------------------------------------- load


async def test_load_when_mixed_then_open_orders_and_recently_created_finished_ones(
    db: Database,
) -> None:
    since = T0 + 1_000
    items = [
        Tracked(_order("open-old", created_at_ms=T0 - 10**9)),
        Tracked(_order("open-new", status=S.ACCEPTED, opex_order_id="1", created_at_ms=since)),
        Tracked(_order("done-old", status=S.FILLED, opex_order_id="2", created_at_ms=since - 1)),
        Tracked(_order("done-new", status=S.CANCELED, opex_order_id="3", created_at_ms=since)),
        Tracked(_order("failed-new", status=S.FAILED, created_at_ms=since + 5)),
    ]
    correlation = uuid.uuid4()
    items[0].correlation_id = correlation
    async with db.transaction() as session:
        await store.insert_new(session, items)
    loaded = await _load(db, finished_since_ms=since)
    assert set(loaded) == {"open-old", "open-new", "done-new", "failed-new"}
    assert loaded["open-old"].correlation_id == correlation
    assert loaded["open-old"].causation_id is None
    assert loaded["done-new"].order.status is S.CANCELED
    for cid, tracked in loaded.items():
        assert tracked.order == next(t.order for t in items if t.client_order_id == cid)
        assert tracked.finished_at_ms is None  # the book sets it when it installs them
    assert set(await _load(db, finished_since_ms=since + 100)) == {"open-old", "open-new"}


async def test_load_when_empty_then_nothing(db: Database) -> None:
    assert await _load(db) == {}


# ---------------------------------------------------------------- unique OPEX order id


async def test_unique_opex_id_when_two_orders_of_a_user_claim_one_then_refused(
    db: Database,
) -> None:
    async with db.transaction() as session:
        await store.upsert(session, [Tracked(_order("a", status=S.ACCEPTED, opex_order_id="5"))])
    with pytest.raises(sa_exc.IntegrityError):
        async with db.transaction() as session:
            await store.upsert(
                session, [Tracked(_order("b", status=S.ACCEPTED, opex_order_id="5"))]
            )
    with pytest.raises(sa_exc.IntegrityError):
        async with db.transaction() as session:
            await store.insert_new(
                session, [Tracked(_order("c", status=S.ACCEPTED, opex_order_id="5"))]
            )
    with pytest.raises(sa_exc.IntegrityError):  # both in one statement
        async with db.transaction() as session:
            await store.upsert(
                session,
                [
                    Tracked(_order("d", status=S.ACCEPTED, opex_order_id="6")),
                    Tracked(_order("e", status=S.ACCEPTED, opex_order_id="6")),
                ],
            )
    assert set(await _rows(db)) == {"a"}


async def test_unique_opex_id_when_same_id_on_another_pair_then_both_held(
    db: Database,
) -> None:
    """OPEX numbers orders per pair: order 5 of BTC_USDT and order 5 of ETH_USDT."""
    btc = _order("btc", status=S.ACCEPTED, opex_order_id="5")
    eth = _order("eth", status=S.ACCEPTED, opex_order_id="5")
    eth.symbol = "ETH_USDT"
    async with db.transaction() as session:
        await store.upsert(session, [Tracked(btc), Tracked(eth)])
    loaded = await _load(db)
    assert loaded["btc"].order == btc
    assert loaded["eth"].order == eth


async def test_unique_opex_id_when_many_orders_without_one_then_all_held(db: Database) -> None:
    async with db.transaction() as session:
        inserted = await store.insert_new(session, [Tracked(_order(f"n{i}")) for i in range(5)])
    assert len(inserted) == 5


async def test_upsert_when_concurrent_writers_then_each_order_written_once(db: Database) -> None:
    """Two transactions writing disjoint orders at once both commit (no table lock)."""

    async def write(prefix: str) -> None:
        async with db.transaction() as session:
            await store.upsert(session, [Tracked(_order(f"{prefix}{i}")) for i in range(20)])

    await asyncio.gather(write("x"), write("y"))
    assert len(await _rows(db)) == 40
