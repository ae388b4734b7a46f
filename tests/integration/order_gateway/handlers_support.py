"""`GatewayService` driven directly, without Kafka: built as ``app.build`` builds it
(a Database on the test's gateway schema, an OpexClient on the session sandbox, a
CredentialStore on the test's credentials schema), approvals handed to
``handle_batch`` in a transaction of our own, events read back from the outbox, and
every placement request recorded (and, on demand, held or failed) by a spy."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from services.order_gateway.adapters import store
from services.order_gateway.config import GatewayConfig
from services.order_gateway.domain.clock import system_clock
from services.order_gateway.handlers import GatewayService
from shared.contracts import Envelope, OrderStatus, decode
from shared.credentials import CredentialStore, SecretBox
from shared.db import Database
from shared.messaging import Transaction
from shared.messaging._tables import outbox_table
from shared.opex import OpexClient
from tests.integration.order_gateway.conftest import gateway_settings
from tests.integration.order_gateway.support import Sandbox

LOOPS = ("submit", "results", "poll", "cancel")


@dataclass
class PlaceCall:
    """One ``place_order`` the gateway made: its terms, when, what came of it, and how
    many in-flight orders of the book had these terms when it started."""

    symbol: str
    side: str
    quantity: Decimal
    price: Decimal
    time_in_force: str
    started_ms: int
    in_flight_alike: int
    sent_ms: int | None = None
    """When the request really left for OPEX (after any hold)."""
    ended_ms: int | None = None
    outcome: str | None = None


@dataclass
class Harness:
    service: GatewayService
    db: Database
    opex: OpexClient
    sandbox: Sandbox
    prefix: str
    calls: list[PlaceCall] = field(default_factory=list)
    gate: asyncio.Event | None = None
    """While set to an unset event, placement requests wait for it (still out)."""
    fail_with: Callable[[], Exception] | None = None
    """When set, a placement raises this instead of reaching OPEX."""
    _loops: list[asyncio.Task[None]] = field(default_factory=list)

    # ---------------------------------------------------------------- driving

    async def approve(self, envelopes: Sequence[Envelope[Any]]) -> None:
        """What the consumer does with a batch of orders.approved (minus the inbox)."""
        service = self.service
        async with service.lock:
            service.begin_batch()
            try:
                async with self.db.transaction() as session:
                    await service.handle_batch(envelopes, Transaction(session=session))
            finally:
                await service.end_batch()

    def start(self, loops: Sequence[str] = LOOPS) -> None:
        service = self.service
        make: dict[str, Callable[[], Coroutine[Any, Any, None]]] = {
            "submit": service.submit_forever,
            "results": service.results_forever,
            "poll": service.poll_forever,
            "cancel": service.cancel_forever,
        }
        for name in loops:
            self._loops.append(asyncio.create_task(make[name](), name=f"test-gateway-{name}"))

    async def stop_loops(self) -> None:
        for task in self._loops:
            await cancel(task)
        for task in self._loops:
            assert task.cancelled() or task.exception() is None, task.exception()
        self._loops.clear()

    async def placements_done(self, timeout: float = 10.0) -> None:
        """Wait until no placement request of the service is out."""
        await wait_for(lambda: not self.service._sending, timeout=timeout, what="placements")

    # ---------------------------------------------------------------- reading

    def status(self, client_order_id: str) -> OrderStatus | None:
        tracked = self.service.book.get(client_order_id)
        return None if tracked is None else tracked.order.status

    def opex_id(self, client_order_id: str) -> str | None:
        tracked = self.service.book.get(client_order_id)
        return None if tracked is None else tracked.order.opex_order_id

    def memory(self) -> dict[str, tuple[Any, ...]]:
        """The book as comparable values."""
        return {
            cid: (store.to_state(t.order), t.correlation_id, t.causation_id)
            for cid, t in self.service.book.orders.items()
        }

    async def assert_memory_is_table(self) -> None:
        """The book equals what a reload would install (read under the service's lock,
        so no change is between memory and its commit)."""
        async with self.service.lock:
            assert self.memory() == await self.table()

    async def table(self) -> dict[str, tuple[Any, ...]]:
        """What a reload would install, as comparable values."""
        since = self.service.clock() - self.service.book.keep_finished_ms
        async with self.db.transaction() as session:
            items = await store.load(session, finished_since_ms=since)
        return {
            t.client_order_id: (store.to_state(t.order), t.correlation_id, t.causation_id)
            for t in items
        }

    async def events(self) -> list[Envelope[Any]]:
        """Every message the service staged in its outbox, in order (read under the
        service's lock: a change seen in memory is committed by then)."""
        async with self.service.lock, self.db.transaction() as session:
            result = await session.execute(
                select(outbox_table.c.topic, outbox_table.c.payload).order_by(outbox_table.c.id)
            )
            rows = result.all()
        return [
            decode(bytes(payload), topic=topic.removeprefix(self.prefix)) for topic, payload in rows
        ]

    async def events_of(self, client_order_id: str) -> list[Envelope[Any]]:
        return [
            e
            for e in await self.events()
            if getattr(e.data, "client_order_id", None) == client_order_id
        ]

    # ------------------------------------------------------------------ spying

    def spy(self, monkeypatch: pytest.MonkeyPatch) -> None:
        client = self.service.orders_opex
        real = client.place_order

        async def place_order(*args: Any, **kwargs: Any) -> Any:
            _, symbol, side, _, quantity, price, tif = args
            book = self.service.book
            alike = [  # from the orders themselves, not the book's in-flight index
                t
                for t in book.orders.values()
                if t.order.is_in_flight
                and (p := t.order.fingerprint) is not None
                and (p.symbol, p.side.value.upper(), p.quantity, p.price)
                == (symbol, side.value, quantity, price)
            ]
            call = PlaceCall(
                symbol,
                side.value,
                quantity,
                price,
                tif.value,
                self.service.clock(),
                len(alike),
            )
            self.calls.append(call)
            try:
                if self.gate is not None:
                    await self.gate.wait()
                if self.fail_with is not None:
                    raise self.fail_with()
                call.sent_ms = self.service.clock()
                answer = await real(*args, **kwargs)
            except BaseException as error:
                call.outcome = type(error).__name__
                raise
            finally:
                call.ended_ms = self.service.clock()
            call.outcome = "ok"
            return answer

        monkeypatch.setattr(client, "place_order", place_order)


CANCELS_NEEDED: list[int] = []
"""How many cancels each stopped loop needed (Python 3.11's ``asyncio.wait_for`` can
swallow a cancel that races with the awaited event being set)."""


async def cancel(task: asyncio.Task[Any]) -> None:
    """Cancel ``task`` and wait for it to end, cancelling again if a cancel was lost."""
    tries = 0
    while not task.done():
        tries += 1
        task.cancel()
        await asyncio.wait([task], timeout=0.5)
    CANCELS_NEEDED.append(tries)


async def wait_for(
    condition: Callable[[], bool], *, timeout: float = 10.0, what: str = "condition"
) -> None:
    """Wait until ``condition()`` holds (checked every 10 ms), or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached within {timeout} s")
        await asyncio.sleep(0.01)


def config(**changes: Any) -> GatewayConfig:
    """The integration tests' short timings (conftest's `gateway_settings`)."""
    return gateway_settings(**changes).config()


@contextlib.asynccontextmanager
async def harness(
    *,
    database_url: str,
    schemas: tuple[str, str],
    sandbox: Sandbox,
    box: SecretBox,
    monkeypatch: pytest.MonkeyPatch,
    gateway: GatewayConfig | None = None,
    **service: Any,
) -> AsyncIterator[Harness]:
    """A `GatewayService` as ``app.build`` wires it, loaded, with its placements spied
    on; its loops run only when the test starts them."""
    prefix = f"gwh{uuid.uuid4().hex[:8]}."
    db = Database(database_url, schemas[0], pool_size=4)
    client = OpexClient(sandbox.opex_settings())
    values: dict[str, Any] = {
        "publish_market_data": False,
        "fast_poll_ms": (10, 20, 40, 80, 160),
        **service,
    }
    gateway_service = GatewayService(
        config=gateway or config(),
        db=db,
        opex=client,
        credentials=CredentialStore(db, box, schema=schemas[1]),
        clock=system_clock,
        topic_prefix=prefix,
        **values,
    )
    it = Harness(gateway_service, db, client, sandbox, prefix)
    it.spy(monkeypatch)
    try:
        await gateway_service.load()
        yield it
    finally:
        if it.gate is not None:
            it.gate.set()
        await it.stop_loops()
        await gateway_service.stop()
        await client.aclose()
        await db.dispose()
