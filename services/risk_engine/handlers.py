"""What the risk engine does with each message it consumes, and on its timer.

Plain code over the domain engine: no broker here. Every decision and every input
that changes the engine's state is appended to the journal in the transaction that
records the message in the inbox, so a restart rebuilds exactly the state whose
decisions were published (`RiskService.rebuild`). All entry points run under one lock:
the engine's state is a single in-memory object.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from services.risk_engine.adapters import store
from services.risk_engine.config import RiskLimits
from services.risk_engine.domain.clock import Clock
from services.risk_engine.domain.decisions import (
    Approved,
    CancelPassed,
    PlaceDecision,
)
from services.risk_engine.domain.engine import RiskEngine, epoch_ms
from services.risk_engine.domain.limits import Limits
from services.risk_engine.metrics import DECISIONS, DRIFTS, REPLAYED
from services.risk_engine.outgoing import Envelopes
from shared.contracts import (
    BalancesUpdated,
    CancelOrder,
    CancelRejected,
    ClosePosition,
    Envelope,
    InstrumentUpdated,
    Message,
    OrderApproved,
    OrderEvent,
    OrderRejected,
    PlaceOrder,
    RejectSource,
    TickerUpdated,
    TradingStateChanged,
    UserProvisioned,
    decode,
    encode,
)
from shared.db import Database
from shared.messaging import Transaction, stage

log = structlog.get_logger(__name__)

# Decisions and state changes the engine's replay understands.
_JOURNALED_OUTPUTS = (OrderApproved, OrderRejected, TradingStateChanged)


@dataclass
class _Batch:
    """What one batch (or timer tick) decided: messages to publish, journal rows."""

    outgoing: list[tuple[Envelope[Any], bytes | None]] = field(default_factory=list)
    journal: list[store.JournalRow] = field(default_factory=list)
    tickers: dict[str, bytes] = field(default_factory=dict)
    decided: Counter[tuple[str, str]] = field(default_factory=Counter)
    """Decisions by (outcome, reason), counted into the metric once per batch."""


class RiskService:
    def __init__(
        self,
        engine: RiskEngine,
        base_limits: RiskLimits,
        *,
        clock: Clock,
        balances_interval_ms: int = 1000,
    ) -> None:
        self.engine = engine
        self._base_limits = base_limits
        self._clock = clock
        self._lock = asyncio.Lock()
        self._limits_version: tuple[int, Any] | None = None
        self._dirty_balances: set[str] = set()
        self._balances_interval_ms = balances_interval_ms
        self._last_balances_ms = 0
        self._last_control_ms = 0
        self.control_interval_ms = 100
        self._envelopes = Envelopes()
        self._decided: dict[tuple[str, str], Any] = {}

    # ---------------------------------------------------------------------- startup

    async def rebuild(self, db: Database) -> int:
        """Replay the journal into a fresh engine state; returns the rows replayed."""
        async with self._lock:
            self.engine.state = type(self.engine.state)()
            replayed = 0
            async for row in store.read_journal(db):
                envelope = decode(row.payload)
                self.engine.replay(row.user_id, envelope.data, row.at_ms)
                replayed += 1
            async with db.transaction() as session:
                await self._reload_limits(session, force=True)
                for payload in await store.load_tickers(session):
                    self.engine.on_ticker(decode(payload).data_as(TickerUpdated))
        REPLAYED.inc(replayed)
        log.info("risk_state_rebuilt", journal_rows=replayed, users=len(self.engine.state.accounts))
        return replayed

    # ------------------------------------------------------------------------ batches

    async def handle_batch(self, envelopes: Sequence[Envelope[Any]], tx: Transaction) -> None:
        """The new messages of one consumed batch, in order."""
        async with self._lock:
            batch = _Batch()
            if self._clock() - self._last_control_ms >= self.control_interval_ms:
                await self._control(tx.session, batch)
            for envelope in envelopes:
                self._dispatch(envelope, batch)
            for (outcome, reason), n in batch.decided.items():
                self._count(outcome, reason, n)
            await store.append_journal(tx.session, batch.journal)
            await store.save_tickers(tx.session, batch.tickers)
            for out, encoded in batch.outgoing:
                tx.publish(out, encoded=encoded)

    async def tick(self, session: AsyncSession, *, topic_prefix: str = "") -> int:
        """The timer: pending ops requests, a new UTC day, held-back position updates,
        the balances of users whose reservations changed. Returns messages staged."""
        async with self._lock:
            batch = _Batch()
            await self._control(session, batch)
            for out in self.engine.on_timer():
                self._emit(None, out.user_id, out.message, batch)
            now = self._clock()
            if self._dirty_balances and now - self._last_balances_ms >= self._balances_interval_ms:
                self._last_balances_ms = now
                for user_id in sorted(self._dirty_balances):
                    view = self.engine.balances_view(user_id)
                    if view is not None:
                        self._emit(None, user_id, view, batch)
                self._dirty_balances.clear()
            await store.append_journal(session, batch.journal)
            staged = [(e, None, encoded) for e, encoded in batch.outgoing]
            await stage(session, staged, topic_prefix=topic_prefix)
            return len(batch.outgoing)

    # ------------------------------------------------------------------------ control

    async def _reload_limits(self, session: AsyncSession, *, force: bool = False) -> None:
        version = await store.limits_version(session)
        if force or version != self._limits_version:
            global_limits, users = await store.load_limits(session, self._base_limits)
            self.engine.limits = Limits(global_limits, users)
            self._limits_version = version
            log.info("risk_limits_loaded", user_overrides=len(users))

    async def _control(self, session: AsyncSession, batch: _Batch) -> None:
        """Apply limit changes and trading-state requests made by ops since last time
        (at most every ``control_interval_ms`` on the hot path, and on every tick)."""
        self._last_control_ms = self._clock()
        await self._reload_limits(session)
        for request in await store.take_control_requests(session):
            change = self.engine.set_trading_state(
                request.state,
                changed_by=request.requested_by,
                reason=request.reason,
                user_id=request.user_id,
            )
            if change is not None:
                self._emit(None, change.user_id, change.message, batch)

    # ----------------------------------------------------------------------- dispatch

    def _dispatch(self, envelope: Envelope[Any], batch: _Batch) -> None:
        data = envelope.data
        user_id = envelope.user_id
        at_ms = epoch_ms(envelope.occurred_at)
        if isinstance(data, PlaceOrder | ClosePosition | CancelOrder):
            assert user_id is not None
            self._decide(envelope, user_id, data, batch)
        elif isinstance(data, TickerUpdated):
            batch.tickers[data.symbol] = encode(envelope)
            for out in self.engine.on_ticker(data):
                self._emit(envelope, out.user_id, out.message, batch)
        elif self._is_own(data):
            return
        elif isinstance(data, OrderEvent):
            assert user_id is not None
            self._journal(envelope, batch)
            for out in self.engine.on_order_event(user_id, data, at_ms):
                self._emit(envelope, out.user_id, out.message, batch)
            self._dirty_balances.add(user_id)
        elif isinstance(data, BalancesUpdated):
            assert user_id is not None
            self._journal(envelope, batch)
            for drift in self.engine.on_balances(user_id, data, at_ms):
                DRIFTS.inc()
                log.warning("balance_drift", user_id=user_id, drift=str(drift))
        elif isinstance(data, UserProvisioned):
            assert user_id is not None
            self._journal(envelope, batch)
            self.engine.on_user_provisioned(user_id, data, at_ms)
        elif isinstance(data, InstrumentUpdated):
            self._journal(envelope, batch)
            self.engine.on_instrument(data)

    @staticmethod
    def _is_own(data: Message) -> bool:
        """Messages this engine published itself, read back from a topic it consumes."""
        if isinstance(data, OrderRejected | CancelRejected):
            return data.source is RejectSource.RISK
        return isinstance(data, TradingStateChanged)

    def _decide(
        self,
        envelope: Envelope[Any],
        user_id: str,
        command: PlaceOrder | ClosePosition | CancelOrder,
        batch: _Batch,
    ) -> None:
        if isinstance(command, CancelOrder):
            cancel = self.engine.decide_cancel(user_id, command)
            outcome = "cancel_passed" if isinstance(cancel, CancelPassed) else "cancel_refused"
            batch.decided[outcome, ""] += 1
            self._emit(envelope, user_id, cancel.to_message(), batch)
            return
        decision: PlaceDecision
        if isinstance(command, ClosePosition):
            decision = self.engine.decide_close_position(user_id, command, command_id=envelope.id)
        else:
            decision = self.engine.decide_place(user_id, command)
        if isinstance(decision, Approved):
            batch.decided["approved", ""] += 1
            self._dirty_balances.add(user_id)
        else:
            batch.decided["rejected", str(decision.code)] += 1
        self._emit(envelope, user_id, decision.to_message(), batch)
        for out in decision.events:
            self._emit(envelope, out.user_id, out.message, batch)

    def _count(self, outcome: str, reason: str, n: int) -> None:
        """``n`` more decisions (the labelled counters are looked up once)."""
        counter = self._decided.get((outcome, reason))
        if counter is None:
            counter = self._decided[outcome, reason] = DECISIONS.labels(
                outcome=outcome, reason=reason
            )
        counter.inc(n)

    def _emit(
        self,
        parent: Envelope[Any] | None,
        user_id: str | None,
        message: Message,
        batch: _Batch,
    ) -> None:
        envelope = self._envelopes.make(parent, message, user_id)
        encoded = None
        if isinstance(message, _JOURNALED_OUTPUTS):
            encoded = encode(envelope)
            batch.journal.append(store.JournalRow(user_id, self._clock(), encoded))
        batch.outgoing.append((envelope, encoded))

    def _journal(self, envelope: Envelope[Any], batch: _Batch) -> None:
        at_ms = epoch_ms(envelope.occurred_at)
        batch.journal.append(store.JournalRow(envelope.user_id, at_ms, encode(envelope)))
