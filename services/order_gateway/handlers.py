"""What the order gateway does: approved commands in, OPEX requests out, OPEX's answers
and listings turned into order events. Plain code over the domain; no broker here.

Every change to an order happens under one lock, on the in-memory `Book`, and is
written to the ``orders`` table in the same transaction that stages its events in the
outbox (`_commit`). HTTP calls to OPEX happen outside the lock. The rule that makes
placement safe: an order's intent (its price and request time) is committed BEFORE its
request goes out; after that the order is "in flight" and is only ever resolved by
asking OPEX (listings, a targeted query), never by sending it again.

Loops (started by the app): submitting ready orders, applying placement results,
polling users with open orders, sending cancels, publishing balances, reconciling,
publishing market data, pruning finished orders.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

import structlog

from services.order_gateway.adapters import opex as opex_map
from services.order_gateway.adapters import store
from services.order_gateway.config import GatewayConfig, Surface
from services.order_gateway.domain import (
    BestPrices,
    CancelDeferred,
    CancelDone,
    CancelRefused,
    CircuitBreaker,
    Clock,
    GiveUp,
    Intent,
    ListedOrder,
    ListedTrade,
    Outcome,
    PriceRefusal,
    SendCancel,
    UserThrottle,
    correlate,
    marketable_limit_price,
    may_submit,
    reconcile,
    refuse_unknown_cancel,
    resolve,
)
from services.order_gateway.domain.book import Book, Tracked
from services.order_gateway.domain.orders import Fingerprint, GatewayOrder
from services.order_gateway.metrics import (
    ACCEPT_SECONDS,
    AMBIGUOUS,
    ANOMALIES,
    BREAKER_OPEN,
    CANCELS,
    EVENTS,
    FILLED,
    HELD_STOPS,
    ILLEGAL,
    IN_FLIGHT,
    OPEN,
    OPEX_REQUESTS,
    OPEX_SECONDS,
    PLACEMENTS,
    RECONCILED,
    RELOADS,
)
from shared.contracts import (
    Balance,
    BalanceSource,
    BalancesUpdated,
    CancelApproved,
    Envelope,
    Event,
    InstrumentUpdated,
    OrderAccepted,
    OrderApproved,
    OrderStatus,
    OrderType,
    RejectReason,
    TickerUpdated,
    TimeInForce,
    UserProvisioned,
    caused_by,
    new_message,
)
from shared.credentials import CredentialStore, OpexCredentials
from shared.db import Database
from shared.messaging import Transaction, stage
from shared.observability.tracing import TraceContext, span, use_trace
from shared.opex import (
    OpexAmbiguous,
    OpexAuthError,
    OpexClient,
    OpexError,
    OpexRateLimited,
    OpexRefused,
    OpexUnavailable,
)
from shared.opex import OrderType as OpexOrderType
from shared.opex import Side as OpexSide
from shared.opex import TimeInForce as OpexTif

log = structlog.get_logger(__name__)
S = OrderStatus
T = TypeVar("T")
_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Rules:
    """What the gateway needs of a pair's rules to price a market order."""

    price_step: Decimal
    quantity_step: Decimal
    is_available: bool


@dataclass(frozen=True, slots=True)
class _Result:
    """What a placement request did: ``sent`` (OPEX took it or may have), ``refused``
    (a definite no, with OPEX's code) or not sent (``retry_after_ms``)."""

    client_order_id: str
    kind: str
    code: int | None = None
    message: str = ""
    retry_after_ms: int = 0
    reason_code: RejectReason | None = None


@dataclass
class _Poll:
    """One user's OPEX reads for one symbol, taken outside the lock."""

    symbol: str
    listed: list[ListedOrder] = field(default_factory=list)
    trades: list[ListedTrade] = field(default_factory=list)
    started_ms: int = 0
    complete: bool = True
    start_ms: int = 0
    """The listing's window start (``allOrders`` startTime): only a read whose window
    starts ``clock_skew_ms`` before an in-flight order's request can prove it absent."""


def _log_odd(outcome: Outcome, user_id: str) -> None:
    """Log and count the transitions an outcome refused and the anomalies it found."""
    for refused in outcome.refused:
        ILLEGAL.inc()
        log.warning("illegal_transition", detail=str(refused), user_id=user_id)
    for anomaly in outcome.anomalies:
        ANOMALIES.inc()
        log.warning("order_anomaly", detail=anomaly, user_id=user_id)


def _signature(order: GatewayOrder) -> tuple[Any, ...]:
    """What a poll can change in an order (a change means: write it)."""
    return (
        order.status,
        order.opex_order_id,
        order.filled_quantity,
        len(order.seen_trade_ids),
        order.cancel_requested,
    )


@functools.cache
def _child(metric: Any, *labels: str) -> Any:
    """``metric.labels(*labels)``, looked up once: the hot path counts every request and
    event, and prometheus_client's lookup takes a lock and builds a key each time."""
    return metric.labels(*labels)


async def _wait(event: asyncio.Event, timeout_s: float) -> None:
    """Until ``event`` is set or ``timeout_s`` passed. Not ``asyncio.wait_for``: on
    Python 3.11 it swallows a cancellation that arrives as the event fires (CPython
    gh-86296), and a loop that misses its cancellation never stops."""
    waiter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait({waiter}, timeout=timeout_s)
    finally:
        waiter.cancel()


class GatewayService:
    def __init__(
        self,
        *,
        config: GatewayConfig,
        db: Database,
        opex: OpexClient,
        credentials: CredentialStore,
        clock: Clock,
        topic_prefix: str = "",
        on_commit: Callable[[], None] | None = None,
        place_concurrency: int = 64,
        poll_concurrency: int = 32,
        fast_poll_ms: tuple[int, ...] = (10, 20, 40, 80, 160, 320, 640),
        min_poll_gap_ms: int = 25,
        balances_interval_ms: int = 1_000,
        balances_refresh_ms: int = 30_000,
        market_data_interval_ms: int = 1_000,
        instruments_interval_ms: int = 60_000,
        publish_market_data: bool = True,
        market_heartbeat_ms: int = 3_000,
        listing_margin_ms: int = 250,
        lookahead: int | None = None,
    ) -> None:
        self.config = config
        self.db = db
        self.opex = opex
        self.orders_opex = opex.using("v3" if config.order_surface is Surface.V3 else "opex")
        self.credentials = credentials
        self.clock = clock
        self.prefix = topic_prefix
        self.on_commit = on_commit or (lambda: None)
        self.book = Book(keep_finished_ms=max(600_000, 2 * config.correlation_window_ms))
        self.lock = asyncio.Lock()
        self.throttle = UserThrottle(config)
        self.breaker = CircuitBreaker(
            clock,
            failure_threshold=config.breaker_failure_threshold,
            cool_down_ms=config.breaker_cool_down_ms,
        )
        self.best: dict[str, BestPrices] = {}
        self.rules: dict[str, Rules] = {}
        self.fast_poll_ms = fast_poll_ms
        self.balances_interval_ms = balances_interval_ms
        self.market_data_interval_ms = market_data_interval_ms
        self.instruments_interval_ms = instruments_interval_ms
        self.publish_market_data = publish_market_data
        self.place_concurrency = place_concurrency
        self._sending: set[str] = set()
        """Orders whose placement request is out (or about to go): never given up while
        here, and at most ``place_concurrency`` of them, so an intent's request time is
        the time its request really leaves."""
        self._cancel_slots = asyncio.Semaphore(place_concurrency)
        self._place_slots = asyncio.Semaphore(place_concurrency)
        self.lookahead = place_concurrency if lookahead is None else lookahead
        """Intents committed ahead of a free send slot (in `_sending`, so never given up
        before they leave): a slot that frees sends at once instead of waiting for the
        next intent's commit."""
        self._trials: set[str] = set()
        self._poll_slots = asyncio.Semaphore(poll_concurrency)
        # orders waiting to be submitted: client order id -> not before (epoch ms)
        self._to_submit: dict[str, int] = {}
        self._pending_since: dict[str, int] = {}
        self._arrived_at: dict[str, float] = {}
        self._submit_wake = asyncio.Event()
        self._results: list[_Result] = []
        self._results_wake = asyncio.Event()
        # polling: user -> due (epoch ms); users being polled; fast-poll step per user
        self._poll_due: dict[str, int] = {}
        self._polling: set[str] = set()
        self._fast_step: dict[str, int] = {}
        self._poll_wake = asyncio.Event()
        self._cursors: dict[tuple[str, str], int] = {}
        """(user, symbol) -> when the last complete listing read started."""
        # cancels to send: client order id -> not before
        self._to_cancel: dict[str, int] = {}
        self._cancel_wake = asyncio.Event()
        self._balances_due: set[str] = set()
        self._known_users: set[str] = set()
        """Provisioned users (from users.events): their balances are re-read every
        ``balances_refresh_ms`` so deposits reach the risk engine without an order."""
        self.balances_refresh_ms = balances_refresh_ms
        self.balances_watch_ms = 60_000
        self._watch_until: dict[str, int] = {}
        self._last_balances: dict[str, tuple[Balance, ...]] = {}
        self._instruments: dict[str, InstrumentUpdated] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._batch_calls = 0
        self._gauges_at = 0.0
        self._last_poll_at: dict[str, int] = {}
        self.min_poll_gap_ms = min_poll_gap_ms
        self.last_error: str | None = None
        self.listing_margin_ms = listing_margin_ms
        self.credentials_ttl_s = 30.0
        self._creds: dict[str, tuple[float, OpexCredentials | None]] = {}
        """user -> (when read, monotonic s; what was read)."""
        self._creds_reading: dict[str, asyncio.Future[OpexCredentials | None]] = {}
        self._offset_low: int | None = None
        """A lower bound on OPEX's clock minus ours (ms), learnt from listings: whatever
        a read lists was stamped by OPEX before the read ended. So OPEX stamps an order
        no earlier than (our request time + this), and a listing window that starts
        there (less ``listing_margin_ms``) finds it without re-reading the whole
        ``clock_skew_ms`` of the user's orders every time."""
        self._offset_at = 0
        self._pending_reads: list[tuple[str, Sequence[_Poll], asyncio.Future[bool]]] = []
        """Listing reads waiting to be applied: whoever takes the lock next applies every
        one of them, and the placement results waiting, in one transaction."""
        self._balances_wake = asyncio.Event()
        self.market_heartbeat_ms = market_heartbeat_ms
        self._tickers_sent: dict[str, tuple[tuple[Any, ...], int]] = {}
        """symbol -> (prices and volume last published, when): an unchanged ticker is
        published again only every ``market_heartbeat_ms`` (fresh for its readers)."""

    # ================================================================== state

    async def load(self) -> None:
        """(Re)build the book from the table: open orders and recently finished ones."""
        now = self.clock()
        async with self.db.transaction() as session:
            items = await store.load(session, finished_since_ms=now - self.book.keep_finished_ms)
        self._install(items, now)

    def _install(self, items: Sequence[Tracked], now: int) -> None:
        self.book = Book(keep_finished_ms=self.book.keep_finished_ms)
        for tracked in items:
            if not tracked.order.is_open:
                tracked.finished_at_ms = now
            self.book.add(tracked, now)
        self._to_submit.clear()
        self._cursors.clear()
        for tracked in items:
            order = tracked.order
            if order.status is S.PENDING_SUBMIT and order.submitted_at_ms is None:
                self._queue_submit(tracked, now)
            if order.status is S.PENDING_CANCEL and order.opex_order_id is not None:
                self._to_cancel[tracked.client_order_id] = now
        for user in self.book.users_with_open_orders():
            self.schedule_poll(user, now)
        self._submit_wake.set()  # the loops sleep until there is work: wake them
        self._cancel_wake.set()
        self._gauges(force=True)

    async def _reload(self, why: str) -> None:
        RELOADS.inc()
        log.warning("gateway_reload", why=why)
        for attempt in range(1, 1_000_000):
            try:
                await self.load()
                return
            except Exception as error:
                self.last_error = f"reload: {type(error).__name__}: {error}"[:300]
                await asyncio.sleep(min(5.0, 0.1 * attempt))

    def _gauges(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._gauges_at < 0.25:  # counting is O(open orders)
            return
        self._gauges_at = now
        IN_FLIGHT.set(sum(1 for _ in self.book.in_flight()))
        OPEN.set(sum(len(cids) for cids in self.book.open_by_user.values()))
        HELD_STOPS.set(len(self.book.stops))
        BREAKER_OPEN.set(0 if self.breaker.state.value == "closed" else 1)

    def _envelopes(self, tracked: Tracked, events: Iterable[Event]) -> list[Envelope[Any]]:
        out: list[Envelope[Any]] = []
        for event in events:
            _child(EVENTS, type(event).__name__).inc()
            if isinstance(event, OrderAccepted):
                arrived = self._arrived_at.pop(tracked.client_order_id, None)
                if arrived is not None:
                    ACCEPT_SECONDS.observe(time.perf_counter() - arrived)
            status = getattr(event, "status", None)
            if status is S.FILLED:
                FILLED.inc()
            if isinstance(status, OrderStatus) and status.is_terminal:
                self._arrived_at.pop(tracked.client_order_id, None)  # never accepted
            out.append(
                new_message(
                    event,
                    user_id=tracked.user_id,
                    correlation_id=tracked.correlation_id,
                    causation_id=tracked.causation_id,
                )
            )
        return out

    def _note(self, tracked: Tracked, outcome: Outcome) -> list[Envelope[Any]]:
        """Log and count what an outcome refused or found odd; its envelopes."""
        _log_odd(outcome, tracked.user_id)
        return self._envelopes(tracked, outcome.events)

    async def _commit(
        self, changed: Sequence[Tracked], outgoing: Sequence[Envelope[Any]], why: str
    ) -> bool:
        """Write ``changed`` and stage ``outgoing`` in one transaction (caller holds the
        lock). On failure the book is reloaded from the table: memory never runs ahead
        of what was committed."""
        if not changed and not outgoing:
            return True
        try:
            async with self.db.transaction() as session:
                await store.upsert(session, changed)
                await stage(session, [(e, None) for e in outgoing], topic_prefix=self.prefix)
        except Exception as error:
            self.last_error = f"{why}: {type(error).__name__}: {error}"[:300]
            log.warning("gateway_commit_failed", why=why, error=self.last_error)
            await self._reload(why)
            return False
        if outgoing:
            self.on_commit()
        self._gauges()
        return True

    # ======================================================== orders.approved

    async def handle_batch(self, envelopes: Sequence[Envelope[Any]], tx: Transaction) -> None:
        """Approved orders and cancels (the Consumer's batch handler, in its inbox
        transaction; the caller holds the lock). A retried call first reloads the book,
        since the failed attempt's changes were rolled back."""
        self._batch_calls += 1
        if self._batch_calls > 1:
            async with self.db.transaction() as session:
                items = await store.load(
                    session, finished_since_ms=self.clock() - self.book.keep_finished_ms
                )
            self._install(items, self.clock())
        now = self.clock()
        new: list[Tracked] = []
        changed: list[Tracked] = []
        for envelope in envelopes:
            data = envelope.data
            user = envelope.user_id or ""
            if isinstance(data, OrderApproved):
                cid = data.command.client_order_id
                if cid in self.book:  # held already, or earlier in this batch (added below)
                    ANOMALIES.inc()
                    log.warning("duplicate_approval", client_order_id=cid, user_id=user)
                    continue
                tracked = Tracked(
                    GatewayOrder.from_approved(user, data, now),
                    correlation_id=envelope.correlation_id,
                    causation_id=envelope.id,
                )
                new.append(tracked)
                self.book.add(tracked, now)
                self._arrived_at[cid] = time.perf_counter()
                if not tracked.order.held:
                    self._queue_submit(tracked, now)
            elif isinstance(data, CancelApproved):
                changed.extend(self._cancel(envelope, data, tx))
        inserted = await store.insert_new(tx.session, new)
        for tracked in new:
            if tracked.client_order_id not in inserted:  # finished long ago, pruned
                ANOMALIES.inc()
                log.warning("duplicate_approval", client_order_id=tracked.client_order_id)
        await store.upsert(tx.session, [t for t in changed if t.client_order_id in self.book])

    def _cancel(
        self, envelope: Envelope[Any], data: CancelApproved, tx: Transaction
    ) -> list[Tracked]:
        cancel = data.command
        user = envelope.user_id or ""
        tracked: Tracked | None = None
        if cancel.client_order_id is not None:
            tracked = self.book.get(cancel.client_order_id)
        if tracked is None and cancel.order_id is not None:
            tracked = self.book.by_opex_id(cancel.symbol, cancel.order_id)
        if tracked is None or tracked.user_id != user or tracked.order.external:
            tx.publish(caused_by(envelope, refuse_unknown_cancel(cancel)))
            return []
        decision = tracked.order.request_cancel()
        now = self.clock()
        if isinstance(decision, CancelRefused):
            tx.publish(caused_by(envelope, decision.rejection))
            return []
        if isinstance(decision, CancelDone):
            for event_envelope in self._note(tracked, decision.outcome):
                tx.publish(event_envelope)
            self._to_submit.pop(tracked.client_order_id, None)
        elif isinstance(decision, SendCancel):
            self._to_cancel[tracked.client_order_id] = now
        elif isinstance(decision, CancelDeferred):
            log.info("cancel_deferred", client_order_id=tracked.client_order_id, why=decision.why)
        self.book.touch(tracked, now)
        return [tracked]

    def begin_batch(self) -> None:
        """Before the consumer processes a batch (the caller holds the lock)."""
        self._batch_calls = 0

    async def end_batch(self) -> None:
        """After the consumer's batch: when the handler ran more than once, the last
        attempt may not have committed, so the book is reloaded from the table. Then
        wake the workers."""
        if self._batch_calls > 1:
            await self._reload("retried batch")
        self._batch_calls = 0
        self._submit_wake.set()
        self._cancel_wake.set()
        self._gauges()

    # ================================================================ tickers

    def on_market(self, envelopes: Sequence[Envelope[Any]]) -> list[str]:
        """Best prices and rules from market.*; held stops whose trigger crossed are
        released (queued for submission). Returns the released client order ids."""
        released: list[str] = []
        now = self.clock()
        for envelope in envelopes:
            data = envelope.data
            if isinstance(data, InstrumentUpdated):
                self.rules[data.symbol] = Rules(
                    data.price_step, data.quantity_step, data.is_available
                )
            elif isinstance(data, TickerUpdated):
                best = BestPrices.of(data)
                seen = self.best.get(data.symbol)
                if seen is None or seen.at_ms <= best.at_ms:
                    self.best[data.symbol] = best
                for stop in self.book.stops.on_last_price(data.symbol, data.last_price):
                    tracked = self.book.get(stop.client_order_id)
                    if tracked is None or not tracked.order.held or not tracked.order.is_open:
                        continue
                    tracked.order.release()
                    self._queue_submit(tracked, now)
                    released.append(stop.client_order_id)
                    log.info(
                        "stop_triggered",
                        client_order_id=stop.client_order_id,
                        user_id=stop.user_id,
                        last_price=str(data.last_price),
                    )
        if released:
            self._submit_wake.set()
        return released

    # ============================================================= submitting

    def _queue_submit(self, tracked: Tracked, now: int) -> None:
        self._to_submit.setdefault(tracked.client_order_id, now)
        self._pending_since.setdefault(tracked.client_order_id, now)

    async def submit_forever(self) -> None:
        while True:
            wait_ms = await self.submit_ready()
            self._submit_wake.clear()
            await _wait(self._submit_wake, wait_ms / 1000)

    async def submit_ready(self) -> int:
        """Record the intent of every order that may go now, commit, then send them.
        Returns how long until the next one is due (ms)."""
        async with self.lock:
            now = self.clock()
            begun: list[Tracked] = []
            changed: list[Tracked] = []
            outgoing: list[Envelope[Any]] = []
            next_due = now + 60_000  # nothing queued: sleep until woken
            in_flight_by_user: dict[str, list[GatewayOrder]] = {}
            for cid, due in list(self._to_submit.items()):
                if len(begun) + len(self._sending) >= self.place_concurrency + self.lookahead:
                    next_due = now + 5  # every slot is busy: woken when one frees
                    break
                if due > now:
                    next_due = min(next_due, due)
                    continue
                tracked = self.book.get(cid)
                order = tracked.order if tracked is not None else None
                if (
                    tracked is None
                    or order is None
                    or order.status is not S.PENDING_SUBMIT
                    or order.held
                    or order.submitted_at_ms is not None
                ):
                    self._forget_submit(cid)
                    continue
                verdict = self._prepare(tracked, now, in_flight_by_user)
                if isinstance(verdict, int):
                    self._to_submit[cid] = verdict
                    next_due = min(next_due, verdict)
                elif isinstance(verdict, Outcome):
                    self._forget_submit(cid)
                    outgoing.extend(self._note(tracked, verdict))
                    self.book.touch(tracked, now)
                    changed.append(tracked)
                else:
                    del self._to_submit[cid]
                    self.book.touch(tracked, now)  # now in flight
                    begun.append(tracked)
                    in_flight_by_user.setdefault(order.user_id, []).append(order)
            if not await self._commit(begun + changed, outgoing, "submit"):
                return 10
        for tracked in begun:
            self._sending.add(tracked.client_order_id)
            self._spawn(self._place(tracked))
        return max(1, next_due - self.clock())

    def _forget_submit(self, cid: str) -> None:
        self._to_submit.pop(cid, None)
        self._pending_since.pop(cid, None)

    def _prepare(
        self, tracked: Tracked, now: int, in_flight_by_user: dict[str, list[GatewayOrder]]
    ) -> int | Outcome | None:
        """None: begin_submit done, send it. An int: not before then. An Outcome: the
        order was given up (no price, never sent)."""
        order = tracked.order
        since = self._pending_since.get(order.client_order_id, now)
        price: Decimal | PriceRefusal
        if order.order_type in (OrderType.MARKET, OrderType.STOP):
            rules = self.rules.get(order.symbol)
            if rules is None:
                price = PriceRefusal(RejectReason.INSTRUMENT_UNKNOWN, "no rules for the pair yet")
            else:
                price = marketable_limit_price(
                    order.side,
                    self.best.get(order.symbol),
                    price_step=rules.price_step,
                    collar_pct=self.config.market_collar_pct,
                    now_ms=now,
                    max_age_ms=self.config.best_price_max_age_ms,
                )
            tif = TimeInForce.IOC
        else:
            assert order.price is not None
            price, tif = order.price, order.time_in_force
        if isinstance(price, PriceRefusal):
            if now - since >= self.config.best_price_max_age_ms:
                return order.fail(price.reason_code, f"not placed: {price.reason}")
            return now + 200
        fingerprint = Fingerprint(order.user_id, order.symbol, order.side, price, order.quantity)
        others = [t.order for t in self.book.in_flight_of(order.user_id)]
        others += in_flight_by_user.get(order.user_id, [])
        if not may_submit(others, fingerprint, order.client_order_id):
            return now + 20  # an identical order is in flight: wait for its correlation
        closed = self.breaker.state.value == "closed"
        if not self.breaker.allow():
            return now + max(100, self.breaker.retry_in_ms())
        wait = self.throttle.try_acquire(self.config.order_surface, order.user_id, now)
        if wait:
            return now + wait
        tracked.slot_ms = now  # restamped when the request really leaves (`_send_place`)
        step = order.begin_submit(price, tif, now)
        if step.anomalies:
            return step
        if not closed:
            self._trials.add(order.client_order_id)  # the half-open breaker's one trial
        return None

    def _spawn(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _credentials(self, user_id: str) -> OpexCredentials | None:
        """The user's credentials: the last ones read while younger than
        ``credentials_ttl_s`` (the store's own cache time), else read once for every
        caller waiting: under load dozens of requests of one user would otherwise miss
        the store's cache together and each read and decrypt the secret. An auth error
        forgets them (`_forget_credentials`)."""
        now = time.monotonic()
        hit = self._creds.get(user_id)
        if hit is not None and now - hit[0] < self.credentials_ttl_s:
            return hit[1]
        reading = self._creds_reading.get(user_id)
        if reading is None:
            reading = asyncio.ensure_future(self._read_credentials(user_id))
            self._creds_reading[user_id] = reading
            reading.add_done_callback(lambda _: self._creds_reading.pop(user_id, None))
        return await asyncio.shield(reading)

    async def _read_credentials(self, user_id: str) -> OpexCredentials | None:
        try:
            self.credentials.invalidate(user_id)  # this cache replaces the store's
            creds = await self.credentials.get(user_id)
        except Exception as error:  # unreadable secret, database down: not sent
            log.warning("credentials_unavailable", user_id=user_id, error=type(error).__name__)
            return None
        self._creds[user_id] = (time.monotonic(), creds)
        return creds

    def _forget_credentials(self, user_id: str) -> None:
        self._creds.pop(user_id, None)
        self.credentials.invalidate(user_id)

    async def _place(self, tracked: Tracked) -> None:
        order = tracked.order
        cid = order.client_order_id
        trace = (
            TraceContext.of(tracked.correlation_id, tracked.causation_id)
            if tracked.correlation_id is not None and tracked.causation_id is not None
            else None
        )
        try:
            async with self._place_slots:  # its intent is committed: wait for a slot
                if cid not in self._trials and self.breaker.state.value != "closed":
                    # the breaker opened while it waited: it surely did not leave
                    wait = max(100, self.breaker.retry_in_ms())
                    result = _Result(cid, "not_sent", retry_after_ms=wait)
                else:
                    with (
                        use_trace(trace),
                        span("order_gateway place_order", trace, symbol=order.symbol),
                    ):
                        result = await self._send_place(tracked)
        finally:
            self._trials.discard(cid)
            tracked.request_done_ms = self.clock()
            if tracked.slot_ms is not None:
                # OPEX counts a request when it arrives, at the latest when it ended:
                # its slot counts from then, so a late request cannot bunch up with
                # the next window's (the order is in `_sending` until here)
                self.throttle.restamp(
                    self.config.order_surface,
                    order.user_id,
                    tracked.slot_ms,
                    tracked.request_done_ms,
                )
                tracked.slot_ms = None
            self._sending.discard(cid)
            self._submit_wake.set()
        _child(PLACEMENTS, result.kind).inc()
        self._results.append(result)
        self._results_wake.set()

    async def _send_place(self, tracked: Tracked) -> _Result:
        """One placement request and what it did (never raises but for cancellation)."""
        order = tracked.order
        cid = order.client_order_id
        creds = await self._credentials(order.user_id)
        if creds is None:
            return _Result(
                cid, "not_sent", retry_after_ms=1_000, reason_code=RejectReason.USER_NOT_PROVISIONED
            )
        assert order.send_price is not None
        assert order.send_time_in_force is not None
        try:
            await self._timed(
                "place_order",
                self.orders_opex.place_order(
                    creds.api_key,
                    order.symbol,
                    OpexSide(order.side.value.upper()),
                    OpexOrderType.LIMIT,
                    order.quantity,
                    order.send_price,
                    OpexTif(order.send_time_in_force.value.upper()),
                ),
            )
        except OpexRateLimited as error:
            return _Result(
                cid, "rate_limited", retry_after_ms=int((error.retry_after_s or 60) * 1000)
            )
        except OpexUnavailable:
            return _Result(cid, "not_sent", retry_after_ms=250)
        except OpexAmbiguous:
            return _Result(cid, "ambiguous")
        except OpexRefused as error:
            if isinstance(error, OpexAuthError):
                self._forget_credentials(order.user_id)
            return _Result(cid, "refused", code=error.code, message=error.opex_message or "")
        except asyncio.CancelledError:
            raise  # in flight: resolved from OPEX's listings after the restart
        except Exception as error:  # unexpected: it may have gone out
            log.error("place_failed_unexpectedly", client_order_id=cid, exc_info=error)
            return _Result(cid, "ambiguous")
        return _Result(cid, "sent")

    async def _timed(self, call: str, work: Awaitable[T]) -> T:
        started = time.perf_counter()
        try:
            value = await work
        except OpexRateLimited:
            _child(OPEX_REQUESTS, call, "rate_limited").inc()
            raise
        except OpexRefused:
            self.breaker.record_success()
            _child(OPEX_REQUESTS, call, "refused").inc()
            raise
        except OpexAmbiguous:
            self.breaker.record_failure()
            _child(OPEX_REQUESTS, call, "ambiguous").inc()
            raise
        except OpexUnavailable:
            self.breaker.record_failure()
            _child(OPEX_REQUESTS, call, "unavailable").inc()
            raise
        finally:
            _child(OPEX_SECONDS, call).observe(time.perf_counter() - started)
        self.breaker.record_success()
        _child(OPEX_REQUESTS, call, "ok").inc()
        return value

    async def results_forever(self) -> None:
        while True:
            await self._results_wake.wait()
            self._results_wake.clear()
            await self.apply_results()

    async def apply_results(self) -> None:
        """Apply every placement result waiting (and every listing read waiting), in
        one transaction."""
        if not self._results and not self._pending_reads:
            return
        async with self.lock:
            await self._apply_pending()

    async def _apply_pending(self) -> None:
        """Placement results, then listing reads, of every order waiting, in one
        transaction (the caller holds the lock). After a failed write (or a bug while
        applying) the book is reloaded: memory never runs ahead of the table."""
        results, self._results = self._results, []
        reads, self._pending_reads = self._pending_reads, []
        if not results and not reads:
            return
        now = self.clock()
        changed: dict[str, Tracked] = {}
        outgoing: list[Envelope[Any]] = []
        polls: set[str] = set()
        ok = False
        try:
            try:
                self._apply_results(results, now, changed, outgoing, polls)
                for user, user_reads, _ in reads:
                    for read in user_reads:
                        self._apply_read(user, read, now, changed, outgoing)
            except Exception as error:  # a bug: never leave memory ahead of the table
                self.last_error = f"apply: {type(error).__name__}: {error}"[:300]
                log.exception("gateway_apply_failed")
                await self._reload("apply failed")
            else:
                ok = await self._commit(list(changed.values()), outgoing, "results and polls")
        finally:
            for _, _, done in reads:
                if not done.done():
                    done.set_result(ok)
        if ok:
            for user in polls:
                self._fast_step[user] = 0
                self.schedule_poll(user, now + self.fast_poll_ms[0])
        for user, _, _ in reads:
            if ok:
                self._next_poll(user, now)
            else:
                self.schedule_poll(user, now + 100)
        self._cancel_wake.set()
        self._submit_wake.set()

    def _apply_results(
        self,
        results: Sequence[_Result],
        now: int,
        changed: dict[str, Tracked],
        outgoing: list[Envelope[Any]],
        polls: set[str],
    ) -> None:
        for result in results:
            tracked = self.book.get(result.client_order_id)
            if tracked is None:
                continue
            order = tracked.order
            surface = self.config.order_surface
            if result.kind in ("sent", "ambiguous"):
                self.throttle.on_success(surface, order.user_id)
                outcome = order.on_submit_sent()
                polls.add(order.user_id)
                self._pending_since.pop(order.client_order_id, None)
            elif result.kind == "refused":
                self.throttle.on_success(surface, order.user_id)
                outcome = order.on_submit_refused(result.code, result.message)
                self._pending_since.pop(order.client_order_id, None)
            else:
                outcome = order.on_submit_not_sent()
                retry_at = now + result.retry_after_ms
                if result.kind == "rate_limited":
                    retry_at = self.throttle.on_rate_limited(
                        surface, order.user_id, now, result.retry_after_ms / 1000
                    )
                since = self._pending_since.get(order.client_order_id, order.created_at_ms)
                if now - since >= self.config.failed_after_ms:
                    reason = result.reason_code or RejectReason.EXCHANGE_UNAVAILABLE
                    outcome = outcome + order.fail(
                        reason,
                        f"not placed within {self.config.failed_after_ms} ms ({result.kind})",
                    )
                    self._pending_since.pop(order.client_order_id, None)
                else:
                    self._to_submit[order.client_order_id] = retry_at
            outgoing.extend(self._note(tracked, outcome))
            self.book.touch(tracked, now)
            changed[tracked.client_order_id] = tracked

    # ================================================================ polling

    def schedule_poll(self, user_id: str, at_ms: int) -> None:
        """Poll ``user_id`` at ``at_ms`` (or earlier if already due), but never sooner
        than ``min_poll_gap_ms`` after their last poll: one listing serves every order
        of the user in flight, so under load polls coalesce instead of multiplying."""
        last = self._last_poll_at.get(user_id)
        if last is not None:
            at_ms = max(at_ms, last + self.min_poll_gap_ms)
        due = self._poll_due.get(user_id)
        if due is None or at_ms < due:
            self._poll_due[user_id] = at_ms
            self._poll_wake.set()

    async def poll_forever(self) -> None:
        while True:
            now = self.clock()
            next_due = now + 60_000  # nobody due: sleep until `schedule_poll` wakes us
            for user, due in list(self._poll_due.items()):
                if user in self._polling:
                    continue
                if due <= now:
                    del self._poll_due[user]
                    self._polling.add(user)
                    self._last_poll_at[user] = now
                    self._spawn(self._poll_guarded(user))
                else:
                    next_due = min(next_due, due)
            self._poll_wake.clear()
            await _wait(self._poll_wake, max(1, next_due - now) / 1000)

    async def _poll_guarded(self, user_id: str) -> None:
        try:
            async with self._poll_slots:
                await self.poll_user(user_id)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            self.last_error = f"poll: {type(error).__name__}: {error}"[:300]
            log.warning("poll_failed", user_id=user_id, error=self.last_error)
            self.schedule_poll(user_id, self.clock() + self.config.poll_interval_ms)
        finally:
            self._polling.discard(user_id)
            self._poll_wake.set()

    def _next_poll(self, user_id: str, now: int) -> None:
        """Poll again soon while something is expected to change, else at the pace."""
        open_orders = self.book.open_of(user_id)
        if not open_orders:
            self._fast_step.pop(user_id, None)
            return
        busy = bool(self.book.in_flight_of(user_id)) or any(
            t.order.status is S.PENDING_CANCEL or t.client_order_id in self._to_cancel
            for t in open_orders
        )
        if busy:
            step = self._fast_step.get(user_id, 0)
            delay = self.fast_poll_ms[min(step, len(self.fast_poll_ms) - 1)]
            self._fast_step[user_id] = step + 1
            self.schedule_poll(user_id, now + min(delay, self.config.poll_interval_ms))
        else:
            self._fast_step.pop(user_id, None)
            self.schedule_poll(user_id, now + self.config.poll_interval_ms)

    async def poll_user(self, user_id: str) -> None:
        """Read the user's orders (and trades when OPEX executed more than we saw) for
        every symbol with open orders, as far back as each needs (`_read`), then apply
        them (with whatever else is waiting) in one transaction."""
        now = self.clock()
        open_orders = [t for t in self.book.open_of(user_id) if t.order.submitted_at_ms is not None]
        if not open_orders:
            self._next_poll(user_id, now)
            return
        if self.breaker.state.value == "open":
            self.schedule_poll(user_id, now + max(100, self.breaker.retry_in_ms()))
            return
        creds = await self._credentials(user_id)
        if creds is None:
            self.schedule_poll(user_id, now + self.config.poll_interval_ms)
            return
        by_symbol: dict[str, list[Tracked]] = {}
        for tracked in open_orders:
            by_symbol.setdefault(tracked.order.symbol, []).append(tracked)
        reads: list[_Poll] = []
        try:
            for symbol, items in sorted(by_symbol.items()):
                read = await self._read(creds, user_id, symbol, items)
                if read is not None:
                    reads.append(read)
        except OpexError as error:
            log.info("poll_deferred", user_id=user_id, error=type(error).__name__)
            self.schedule_poll(user_id, self.clock() + self.config.poll_interval_ms)
            return
        if not reads or (
            not any(read.listed or read.trades for read in reads)
            and not self.book.in_flight_by_user.get(user_id)
        ):  # nothing due, or nothing listed and nothing in flight to give up: no change
            self._next_poll(user_id, now)
            return
        await self.apply_reads(user_id, reads)

    def _narrow_ms(self) -> int:
        """How far from one of our times (a request's, a cancel's) OPEX's stamp of what
        that request did may lie, at worst: the learnt clock offset less a margin, or
        ``-clock_skew_ms`` while nothing is learnt (never further back)."""
        skew = self.config.clock_skew_ms
        if self._offset_low is None:
            return -skew
        return max(-skew, self._offset_low - self.listing_margin_ms)

    def _learn_offset(self, listed: Iterable[ListedOrder], ended_ms: int) -> None:
        """Whatever a read listed, OPEX stamped before the read ended: stamp - end is a
        lower bound on OPEX's clock minus ours. The highest recent one is kept (renewed
        every minute, so a clock step is forgotten)."""
        newest = max(
            (o.update_time_ms if o.update_time_ms is not None else o.time_ms for o in listed),
            default=None,
        )
        if newest is None:
            return
        sample = newest - ended_ms
        if (
            self._offset_low is None
            or sample >= self._offset_low
            or ended_ms - self._offset_at > 60_000
        ):
            self._offset_low, self._offset_at = sample, ended_ms

    def _window_start(
        self, user_id: str, symbol: str, items: Sequence[Tracked], now: int
    ) -> tuple[int | None, bool]:
        """Where a listing of ``symbol`` must start (OPEX's update time) to see what may
        have changed, and whether it also serves as the periodic read of resting orders
        (then it moves the user's cursor). None: nothing to read now.

        - first read since (re)load: from the oldest open order, less the clock skew;
        - an in-flight order younger than ``listing_grace_ms``: from its request time
          plus the learnt offset (`_narrow_ms`); an older one: its request time less the
          whole clock skew (such a read is the proof `resolve` needs to give it up);
        - a cancel sent: from when it was sent plus the learnt offset;
        - resting orders, every ``poll_interval_ms``: from the last such read, less the
          listing grace (OPEX may show a change that long after it stamps it) and the
          offset, never further back than the clock skew allows."""
        cfg = self.config
        skew = cfg.clock_skew_ms
        narrow = self._narrow_ms()
        cursor = self._cursors.get((user_id, symbol))
        starts: list[int] = []
        rest = cursor is None or now - cursor >= cfg.poll_interval_ms
        if cursor is None:
            starts.append(
                min(t.order.submitted_at_ms or t.order.created_at_ms for t in items) - skew
            )
        elif rest:
            starts.append(cursor + max(-skew, narrow - cfg.listing_grace_ms))
        for tracked in items:
            order = tracked.order
            if order.is_in_flight and order.submitted_at_ms is not None:
                sent = order.submitted_at_ms
                young = now - sent < cfg.listing_grace_ms
                starts.append(sent + narrow if young else sent - skew)
            elif order.status is S.PENDING_CANCEL and tracked.cancel_sent_ms is not None:
                starts.append(tracked.cancel_sent_ms + narrow)
        return (min(starts) if starts else None), rest

    async def _read(
        self, creds: OpexCredentials, user_id: str, symbol: str, items: list[Tracked]
    ) -> _Poll | None:
        """``allOrders`` filters on update time: each read asks only for the window what
        it looks for needs (`_window_start`); None when nothing needs a read now."""
        started = self.clock()
        skew = self.config.clock_skew_ms
        since = min(t.order.submitted_at_ms or t.order.created_at_ms for t in items)
        full = (user_id, symbol) not in self._cursors
        start, rest = self._window_start(user_id, symbol, items, started)
        if start is None:
            return None
        poll = _Poll(symbol, started_ms=started, start_ms=start)
        seen: dict[str, ListedOrder] = {}
        end: int | None = None
        for _ in range(10):  # OPEX answers the newest updates first: page backwards
            page = await self._timed(
                "all_orders",
                self.opex.all_orders(
                    creds.api_key, symbol, start_time=start, end_time=end, limit=1000
                ),
            )
            listed = [opex_map.listed_order(item) for item in page]
            for listing in listed:
                seen.setdefault(listing.order_id, listing)
            if len(page) < 1000:
                break
            end = min(item.update_time_ms or item.time_ms for item in listed) + 1
        else:
            poll.complete = False
        self._learn_offset(seen.values(), self.clock())
        bound = [t.order.opex_order_id for t in items if t.order.opex_order_id is not None]
        for opex_id in bound if full else ():
            if opex_id not in seen:
                one = await self._timed(
                    "get_order",
                    self.orders_opex.get_order(creds.api_key, symbol, int(opex_id)),
                )
                seen[opex_id] = opex_map.listed_order(one)
        poll.listed = sorted(seen.values(), key=lambda o: (o.time_ms, o.order_id))
        if poll.complete and rest:
            self._cursors[(user_id, symbol)] = started
        if self._wants_trades(items, poll.listed):
            trades: dict[str, ListedTrade] = {}
            from_id: int | None = None
            for _ in range(10):
                page_trades = await self._timed(
                    "my_trades",
                    self.opex.my_trades(
                        creds.api_key,
                        symbol,
                        from_id=from_id,
                        start_time=None if from_id is not None else since - skew,
                        limit=1000,
                    ),
                )
                for trade in page_trades:
                    trades[str(trade.id)] = opex_map.listed_trade(trade)
                if len(page_trades) < 1000:
                    break
                from_id = max(trade.id for trade in page_trades) + 1
            poll.trades = sorted(trades.values(), key=lambda t: (t.time_ms, int(t.trade_id)))
        return poll

    @staticmethod
    def _wants_trades(items: Sequence[Tracked], listed: Sequence[ListedOrder]) -> bool:
        """Does OPEX say one of these orders executed more than we have seen? For an
        order not correlated yet, any execution of a listing with its terms counts."""
        filled = {
            t.order.opex_order_id: t.order.filled_quantity
            for t in items
            if t.order.opex_order_id is not None
        }
        prints = {
            (p.symbol, p.side, p.price, p.quantity)
            for t in items
            if t.order.is_in_flight and (p := t.order.fingerprint) is not None
        }
        for listing in listed:
            if listing.executed_quantity <= _ZERO:
                continue
            known = filled.get(listing.order_id)
            if known is not None and listing.executed_quantity > known:
                return True
            terms = (listing.symbol, listing.side, listing.price, listing.quantity)
            if known is None and terms in prints:
                return True
        return False

    async def apply_reads(self, user_id: str, reads: Sequence[_Poll]) -> bool:
        """Apply one user's reads; whoever takes the lock first applies every read
        waiting by then (and the placement results waiting) in one transaction, so under
        load many users' polls share a commit. True when it was committed."""
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending_reads.append((user_id, reads, done))
        if not done.done():
            async with self.lock:
                if not done.done():
                    await self._apply_pending()
        return done.result()

    def _apply_read(
        self,
        user_id: str,
        read: _Poll,
        now: int,
        changed: dict[str, Tracked],
        outgoing: list[Envelope[Any]],
    ) -> None:
        cfg = self.config
        in_flight = [
            t
            for t in self.book.in_flight_of(user_id)
            if t.order.symbol == read.symbol and t.order.submitted_at_ms is not None
        ]
        intents = [i for t in in_flight if (i := Intent.of(t.order)) is not None]
        matched = correlate(
            intents,
            read.listed,
            self.book.claimed_ids(user_id, read.symbol),
            skew_ms=cfg.clock_skew_ms,
            window_ms=cfg.correlation_window_ms,
        )
        for cid in matched.ambiguous:
            AMBIGUOUS.inc()
            log.warning("ambiguous_correlation", client_order_id=cid, user_id=user_id)
        touched: dict[str, tuple[Tracked, ListedOrder]] = {}

        def apply(tracked: Tracked, step: Callable[[], Outcome]) -> None:
            before = _signature(tracked.order)
            outcome = step()
            outgoing.extend(self._note(tracked, outcome))
            if outcome.events or _signature(tracked.order) != before:
                self.book.touch(tracked, now)
                changed[tracked.client_order_id] = tracked  # written only when it changed
            if outcome.send_cancel:
                decision = tracked.order.request_cancel()
                if isinstance(decision, SendCancel):
                    self._to_cancel[tracked.client_order_id] = now
                    changed[tracked.client_order_id] = tracked

        for tracked in in_flight:
            listing = matched.claims.get(tracked.client_order_id)
            if listing is not None:
                apply(tracked, functools.partial(tracked.order.on_listed, listing))
                tracked.seen_listing = (listing.status, listing.executed_quantity)
                touched[tracked.client_order_id] = (tracked, listing)
        for listing in read.listed:
            owner = self.book.by_opex_id(read.symbol, listing.order_id)
            if (
                owner is None
                or owner.user_id != user_id
                or not owner.order.is_open
                or owner.client_order_id in touched
            ):
                continue
            seen = (listing.status, listing.executed_quantity)
            if seen == owner.seen_listing and listing.executed_quantity == (
                owner.order.filled_quantity
            ):
                continue  # listed as before, nothing held back: nothing to apply
            apply(owner, functools.partial(owner.order.on_listed, listing))
            owner.seen_listing = seen
            touched[owner.client_order_id] = (owner, listing)
        if read.trades:
            for trade in read.trades:
                owner = self.book.by_opex_id(read.symbol, trade.order_id)
                if owner is None or owner.user_id != user_id:
                    continue
                if trade.trade_id in owner.order.seen_trade_ids:
                    continue
                apply(owner, functools.partial(owner.order.on_trade, trade))
            # a terminal listing held back for its trades can apply now
            for tracked, listing in touched.values():
                if listing.executed_quantity == tracked.order.filled_quantity:
                    apply(tracked, functools.partial(tracked.order.on_listed, listing))
        for tracked in in_flight:
            if not tracked.order.is_in_flight or tracked.client_order_id in self._sending:
                continue
            done = tracked.request_done_ms
            # OPEX lists an order a moment after answering, so a read proves an order
            # absent only if it started failed_after_ms after the request ENDED (for a
            # request that left at once, that is the usual deadline)
            # and only a read whose window reaches the whole clock skew back from the
            # request can prove the order absent (`_window_start`)
            sent = tracked.order.submitted_at_ms
            if (
                read.complete
                and sent is not None
                and read.start_ms <= sent - cfg.clock_skew_ms
                and (done is None or read.started_ms >= done + cfg.failed_after_ms)
            ):
                tracked.last_query_at_ms = read.started_ms
            verdict = resolve(
                tracked.order,
                None,
                now_ms=now,
                config=cfg,
                last_query_at_ms=tracked.last_query_at_ms,
            )
            if isinstance(verdict, GiveUp):
                apply(
                    tracked,
                    functools.partial(tracked.order.fail, verdict.reason_code, verdict.reason),
                )
        for tracked in changed.values():
            if tracked.order.filled_quantity or not tracked.order.is_open:
                self._balances_due.add(tracked.user_id)
                self._balances_wake.set()

    # ================================================================ cancels

    async def cancel_forever(self) -> None:
        while True:
            wait_ms = await self.send_cancels()
            self._cancel_wake.clear()
            await _wait(self._cancel_wake, wait_ms / 1000)

    async def send_cancels(self) -> int:
        now = self.clock()
        due: list[Tracked] = []
        next_due = now + 60_000  # nothing queued: sleep until woken
        for cid, at in list(self._to_cancel.items()):
            tracked = self.book.get(cid)
            if (
                tracked is None
                or tracked.order.status is not S.PENDING_CANCEL
                or tracked.order.opex_order_id is None
            ):
                del self._to_cancel[cid]
                continue
            if at > now:
                next_due = min(next_due, at)
                continue
            del self._to_cancel[cid]
            due.append(tracked)
        if due:
            await asyncio.gather(*(self._send_cancel(t) for t in due))
        return max(1, next_due - self.clock())

    async def _send_cancel(self, tracked: Tracked) -> None:
        order = tracked.order
        user = order.user_id
        now = self.clock()
        if not self.breaker.allow():
            self._to_cancel[order.client_order_id] = now + max(100, self.breaker.retry_in_ms())
            return
        wait = self.throttle.try_acquire(self.config.order_surface, user, now)
        if wait:
            self._to_cancel[order.client_order_id] = now + wait
            return
        creds = await self._credentials(user)
        if creds is None:
            self._to_cancel[order.client_order_id] = now + 1_000
            return
        assert order.opex_order_id is not None
        if tracked.cancel_sent_ms is None:
            tracked.cancel_sent_ms = now
        try:
            async with self._cancel_slots:
                await self._timed(
                    "cancel_order",
                    self.orders_opex.cancel_order(
                        creds.api_key, order.symbol, int(order.opex_order_id)
                    ),
                )
        except OpexRateLimited as error:
            until = self.throttle.on_rate_limited(
                self.config.order_surface, user, self.clock(), error.retry_after_s
            )
            self._to_cancel[order.client_order_id] = until
            CANCELS.labels(outcome="retry").inc()
            return
        except OpexRefused as error:
            CANCELS.labels(outcome="refused").inc()
            async with self.lock:
                outcome = order.on_cancel_refused(error.code)
                await self._commit([tracked], self._note(tracked, outcome), "cancel refused")
                self.book.touch(tracked, self.clock())
            self.schedule_poll(user, self.clock() + self.fast_poll_ms[0])
            return
        except OpexError:  # unavailable or ambiguous: a cancel may be sent again
            CANCELS.labels(outcome="retry").inc()
            self._to_cancel[order.client_order_id] = self.clock() + 500
            self._cancel_wake.set()
            return
        CANCELS.labels(outcome="sent").inc()
        self.throttle.on_success(self.config.order_surface, user)
        self._fast_step[user] = 0
        self.schedule_poll(user, self.clock() + self.fast_poll_ms[0])

    # =============================================================== balances

    def on_users(self, envelopes: Sequence[Envelope[Any]]) -> None:
        """users.events: a provisioned user's balances are published at once and then
        refreshed with everyone's."""
        for envelope in envelopes:
            if isinstance(envelope.data, UserProvisioned) and envelope.user_id:
                self._known_users.add(envelope.user_id)
                self._balances_due.add(envelope.user_id)
                # a new account is usually funded right after: watch it closely a while
                self._watch_until[envelope.user_id] = self.clock() + self.balances_watch_ms
                self._balances_wake.set()

    async def balances_forever(self) -> None:
        """Every ``balances_interval_ms`` while some user's balances are due or watched;
        otherwise asleep until one is (``_balances_wake``) or the next refresh of every
        known user (``balances_refresh_ms``)."""
        last_refresh = self.clock()
        while True:
            if not self._balances_due and not self._watch_until:
                self._balances_wake.clear()
                until_refresh = last_refresh + self.balances_refresh_ms - self.clock()
                await _wait(self._balances_wake, max(1, until_refresh) / 1000)
            await asyncio.sleep(self.balances_interval_ms / 1000)
            now = self.clock()
            for user, until in list(self._watch_until.items()):
                if until < now:
                    del self._watch_until[user]
                else:
                    self._balances_due.add(user)
            if self.clock() - last_refresh >= self.balances_refresh_ms:
                last_refresh = self.clock()
                self._balances_due.update(self._known_users)
                self._balances_due.update(self.book.users_with_open_orders())
            try:
                await self.publish_balances()
            except Exception as error:
                self.last_error = f"balances: {type(error).__name__}: {error}"[:300]
                log.warning("balances_failed", error=self.last_error)

    async def publish_balances(self, users: Iterable[str] | None = None) -> int:
        """Read the balances of users whose orders filled or finished, publish those that
        changed (BalancesUpdated, source opex). Returns how many were published."""
        todo = sorted(users if users is not None else self._balances_due)
        self._balances_due.difference_update(todo)
        outgoing: list[Envelope[Any]] = []
        for user in todo:
            creds = await self._credentials(user)
            if creds is None or self.breaker.state.value == "open":
                self._balances_due.add(user)
                continue
            try:
                account = await self._timed("account", self.opex.account(creds.api_key))
            except OpexError:
                self._balances_due.add(user)
                continue
            balances = tuple(
                sorted(
                    (
                        Balance(asset=b.asset.upper(), free=b.free, locked=b.locked)
                        for b in account.balances
                    ),
                    key=lambda b: b.asset,
                )
            )
            if self._last_balances.get(user) == balances:
                continue
            self._last_balances[user] = balances
            outgoing.append(
                new_message(
                    BalancesUpdated(balances=balances, source=BalanceSource.OPEX), user_id=user
                )
            )
        if outgoing:
            async with self.db.transaction() as session:
                await stage(session, [(e, None) for e in outgoing], topic_prefix=self.prefix)
            self.on_commit()
        return len(outgoing)

    # ============================================================ reconciling

    async def reconcile_forever(self) -> None:
        while True:
            try:
                await self.reconcile_all()
            except Exception as error:
                self.last_error = f"reconcile: {type(error).__name__}: {error}"[:300]
                log.warning("reconcile_failed", error=self.last_error)
            await asyncio.sleep(self.config.reconcile_interval_ms / 1000)

    async def reconcile_all(self) -> int:
        """Every user with open orders against OPEX's open orders; returns the number
        of differences fixed."""
        fixed = 0
        for user in self.book.users_with_open_orders():
            fixed += await self.reconcile_user(user)
        return fixed

    async def reconcile_user(self, user_id: str) -> int:
        creds = await self._credentials(user_id)
        if creds is None or self.breaker.state.value == "open":
            return 0
        symbols = sorted({t.order.symbol for t in self.book.open_of(user_id)} | set(self.rules))
        opex_open: dict[str, list[ListedOrder]] = {}
        try:
            for symbol in symbols:
                page = await self._timed(
                    "open_orders", self.orders_opex.open_orders(creds.api_key, symbol)
                )
                opex_open[symbol] = [opex_map.listed_order(item) for item in page]
        except OpexError as error:
            log.info("reconcile_deferred", user_id=user_id, error=type(error).__name__)
            return 0
        fixed = 0
        again = False
        async with self.lock:
            for symbol in symbols:
                count, retry = await self._reconcile_symbol(user_id, symbol, opex_open[symbol])
                fixed += count
                again = again or retry
        if again:
            self.schedule_poll(user_id, self.clock())
        return fixed

    async def _reconcile_symbol(
        self, user_id: str, symbol: str, opex_open: list[ListedOrder]
    ) -> tuple[int, bool]:
        """One user's open orders of one pair against OPEX's (the caller holds the lock;
        OPEX numbers orders per pair, so ids are compared within a pair)."""
        now = self.clock()
        local = sorted(
            (t for t in self.book.open_of(user_id) if t.order.symbol == symbol),
            key=lambda t: t.client_order_id,
        )
        bound_open = {t.order.opex_order_id for t in local if t.order.opex_order_id}
        finished_claims = self.book.claimed_ids(user_id, symbol) - bound_open
        before = {t.client_order_id: store.to_state(t.order) for t in local}
        result = reconcile(
            user_id,
            [t.order for t in local],
            [o for o in opex_open if o.order_id not in finished_claims],
            config=self.config,
        )
        by_cid = {t.client_order_id: t for t in local}
        outgoing: list[Envelope[Any]] = []
        _log_odd(result.outcome, user_id)
        for event in result.outcome.events:
            owner = by_cid.get(str(getattr(event, "client_order_id", "")))
            if owner is not None:
                outgoing.extend(self._envelopes(owner, [event]))
        for tracked in local:
            self.book.touch(tracked, now)
        externals = [Tracked(order) for order in result.external]
        for tracked in externals:
            self.book.add(tracked, now)
            log.warning(
                "external_order",
                user_id=user_id,
                opex_order_id=tracked.order.opex_order_id,
                symbol=symbol,
            )
        for cid in result.ambiguous:
            AMBIGUOUS.inc()
            log.warning("ambiguous_correlation", client_order_id=cid, user_id=user_id)
        RECONCILED.labels(kind="event").inc(len(outgoing))
        RECONCILED.labels(kind="external").inc(len(externals))
        RECONCILED.labels(kind="unresolved").inc(len(result.unresolved))
        # only what reconciliation changed is written (a user may have hundreds resting)
        changed = [t for t in local if store.to_state(t.order) != before[t.client_order_id]]
        await self._commit(changed + externals, outgoing, "reconcile")
        return len(outgoing) + len(externals), bool(result.unresolved or result.needs_trades)

    # ============================================================ market data

    async def market_data_forever(self) -> None:
        last_instruments = 0
        while True:
            now = self.clock()
            try:
                if now - last_instruments >= self.instruments_interval_ms or not self.rules:
                    await self.publish_instruments()
                    last_instruments = now
                await self.publish_tickers()
            except Exception as error:
                self.last_error = f"market data: {type(error).__name__}: {error}"[:300]
                log.warning("market_data_failed", error=self.last_error)
            await asyncio.sleep(self.market_data_interval_ms / 1000)

    async def publish_instruments(self) -> int:
        """OPEX's pair rules to market.instruments (each pair when it changed)."""
        pairs = await self._timed("pairs", self.opex.pairs())
        outgoing: list[Envelope[Any]] = []
        for pair in pairs:
            message = opex_map.instrument(pair)
            if message is None:
                continue
            self.rules[message.symbol] = Rules(
                message.price_step, message.quantity_step, message.is_available
            )
            if self._instruments.get(message.symbol) == message:
                continue
            self._instruments[message.symbol] = message
            outgoing.append(new_message(message, user_id=None))
        await self._stage_market(outgoing)
        return len(outgoing)

    async def publish_tickers(self) -> int:
        """OPEX's tickers to market.tickers (also this gateway's best prices)."""
        tickers = await self._timed("ticker_24h", self.opex.ticker_24h())
        outgoing: list[Envelope[Any]] = []
        now = self.clock()
        sent: dict[str, tuple[tuple[Any, ...], int]] = {}
        for item in tickers:
            if "_" not in item.symbol:
                continue
            message = opex_map.ticker(item)
            values = (message.last_price, message.bid_price, message.ask_price, message.volume)
            last = self._tickers_sent.get(message.symbol)
            if last is not None and last[0] == values and now - last[1] < self.market_heartbeat_ms:
                continue  # unchanged and still fresh for its readers
            sent[message.symbol] = (values, now)
            outgoing.append(new_message(message, user_id=None))
        await self._stage_market(outgoing)
        self._tickers_sent.update(sent)  # only once staged: a failed write sends again
        return len(outgoing)

    async def _stage_market(self, outgoing: Sequence[Envelope[Any]]) -> None:
        if not outgoing or not self.publish_market_data:
            return
        async with self.db.transaction() as session:
            await stage(session, [(e, None) for e in outgoing], topic_prefix=self.prefix)
        self.on_commit()

    # ================================================================ pruning

    async def prune_forever(self) -> None:
        while True:
            await asyncio.sleep(30)
            async with self.lock:
                gone = self.book.prune(self.clock())
            if gone:
                log.info("finished_orders_pruned", count=gone)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
