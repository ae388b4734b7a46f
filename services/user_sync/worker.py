"""The worker: drives due users through their steps, many at once, each on its own.

A loop leases due users from the store (``FOR UPDATE SKIP LOCKED``, so several
processes share the work), up to ``concurrency`` at a time, and runs one task per user.
A task takes step after step, committing each step's outcome before the next OPEX call,
until the user is provisioned, failed, or has to wait (a transient failure: its row gets
``next_attempt_at`` after a backoff with jitter and the lease is released). A user that
waits holds nothing: no task, no lease, no Kafka partition. New rows wake the loop at
once; due retries are found by polling every ``poll_interval_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from services.user_sync import metrics
from services.user_sync.domain.provisioning import (
    TERMINAL,
    Advance,
    Decision,
    Outcome,
    Provisioning,
    Retry,
    RetryPolicy,
    settle,
)
from services.user_sync.handlers import Provisioner, StepSession, outcome_messages
from shared.contracts import Envelope

__all__ = ["Hooks", "Worker", "WorkerStore"]

log = structlog.get_logger(__name__)

Hook = Callable[[Provisioning, Decision], Awaitable[None]]


class WorkerStore(Protocol):
    """The worker's side of the store (`adapters.store.ProvisioningStore`)."""

    async def release_leases(self) -> int: ...

    async def claim(self, limit: int) -> list[Provisioning]: ...

    async def save(
        self,
        before: Provisioning,
        decision: Decision,
        messages: Sequence[Envelope[Any]] = ...,
    ) -> Provisioning | None: ...

    async def defer(self, user_id: str, delay_s: float, *, error: str) -> None: ...


@dataclass
class Hooks:
    """Test hooks around each commit of a step (crash injection)."""

    before_commit: Hook | None = None
    after_commit: Hook | None = None


class Worker:
    def __init__(
        self,
        store: WorkerStore,
        provisioner: Provisioner,
        policy: RetryPolicy,
        *,
        concurrency: int = 64,
        poll_interval_s: float = 1.0,
        on_published: Callable[[], None] = lambda: None,
        hooks: Hooks | None = None,
        internal_retry_s: float = 5.0,
    ) -> None:
        self._store = store
        self._provisioner = provisioner
        self._policy = policy
        self._concurrency = concurrency
        self._poll = poll_interval_s
        self._on_published = on_published
        self._hooks = hooks or Hooks()
        self._internal_retry_s = internal_retry_s
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.Task[None] | None = None
        self._backlog = False
        self._publish_pending = False

    def notify(self) -> None:
        """New users are recorded (or re-queued): look for due work now."""
        self._wake.set()

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        if self._loop is None:
            self._loop = asyncio.create_task(self.run(), name="user_sync-worker")

    async def stop(self) -> None:
        loop, self._loop = self._loop, None
        if loop is not None:
            loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loop
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self._store.release_leases()

    async def run(self) -> None:
        released = await self._store.release_leases()
        if released:
            log.info("leases_released_at_start", users=released)
        failures = 0
        while True:
            self._wake.clear()
            free = self._concurrency - len(self._tasks)
            claimed = 0
            if free > 0:
                try:
                    users = await self._store.claim(free)
                    failures = 0
                except Exception as error:
                    failures += 1
                    delay = min(10.0, 0.2 * 2 ** min(failures, 6))
                    log.warning("claim_failed", error=_describe(error), retry_in_s=delay)
                    await asyncio.sleep(delay)
                    continue
                claimed = len(users)
                for user in users:
                    task = asyncio.create_task(self._drive_safely(user))
                    self._tasks.add(task)
                    task.add_done_callback(self._finished)
                metrics.IN_FLIGHT.set(len(self._tasks))
                # a full claim: more may be due, look again when slots free up
                self._backlog = claimed == free
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll)
            if self._backlog:
                await asyncio.sleep(self._BATCH_S)  # let a few slots free: fewer claims

    _BATCH_S = 0.01

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        metrics.IN_FLIGHT.set(len(self._tasks))
        if self._backlog:
            self._wake.set()

    def _published(self) -> None:
        """Wake the outbox relay, at most every few milliseconds (bigger batches, one
        Kafka transaction for many users when many finish together)."""
        if self._publish_pending:
            return
        self._publish_pending = True

        def wake() -> None:
            self._publish_pending = False
            self._on_published()

        asyncio.get_running_loop().call_later(self._BATCH_S, wake)

    # -- one user --------------------------------------------------------------------------

    async def _drive_safely(self, user: Provisioning) -> None:
        try:
            await self.drive(user)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # a bug or the database: not the user's fault
            log.error("drive_failed", user_id=user.user_id, error=_describe(error))
            with contextlib.suppress(Exception):
                await self._store.defer(
                    user.user_id, self._internal_retry_s, error=_describe(error)
                )

    async def drive(self, user: Provisioning) -> Provisioning | None:
        """Take ``user`` (leased by this process) as far as it goes now; the state
        reached, or ``None`` if another process took the user over."""
        session = StepSession()
        state = user
        while state.step not in TERMINAL:
            step = state.step
            started = time.perf_counter()
            result = await self._provisioner.step(state, session)
            decision = settle(state, result, self._policy)
            messages = outcome_messages(decision)
            if self._hooks.before_commit is not None:
                await self._hooks.before_commit(state, decision)
            saved = await self._store.save(state, decision, messages)
            metrics.STEP_SECONDS.labels(step=step).observe(time.perf_counter() - started)
            if saved is None:
                log.warning("user_taken_over", user_id=state.user_id, step=step)
                return None
            self._observe(state, result, decision)
            if messages:
                self._published()
            if self._hooks.after_commit is not None:
                await self._hooks.after_commit(saved, decision)
            state = saved
            if decision.outcome is Outcome.WAIT:
                break
        return state

    def _observe(self, before: Provisioning, result: object, decision: Decision) -> None:
        state = decision.state
        if state.last_error_code is not None and state.attempts > before.attempts:
            metrics.SETBACKS.labels(step=before.step, code=state.last_error_code).inc()
        if len(state.abandoned_key_ids) > len(before.abandoned_key_ids):
            metrics.ABANDONED_KEYS.inc()
        if decision.outcome is Outcome.WAIT and isinstance(result, Retry):
            log.info(
                "step_retry_later",
                user_id=state.user_id,
                step=before.step,
                code=result.code,
                attempts=state.attempts,
                delay_s=round(decision.delay_s, 3),
                error=state.last_error,
            )
        elif isinstance(result, Advance) and result.setback is not None:
            log.info(
                "step_setback",
                user_id=state.user_id,
                step=before.step,
                to=state.step,
                code=result.setback,
                attempts=state.attempts,
                error=state.last_error,
            )
        if decision.outcome is Outcome.PROVISIONED:
            metrics.PROVISIONED.inc()
            log.info(
                "user_provisioned",
                user_id=state.user_id,
                opex_user_id=str(state.opex_user_id),
                adopted=state.adopted,
                attempts=state.attempts,
            )
        elif decision.outcome is Outcome.FAILED and decision.failure is not None:
            metrics.FAILED.labels(reason=decision.failure.reason).inc()
            log.warning(
                "user_provisioning_failed",
                user_id=state.user_id,
                step=before.step,
                reason=decision.failure.reason,
                attempts=decision.failure.attempts,
                error=decision.failure.message,
            )


def _describe(error: BaseException) -> str:
    """An exception's type and the first line of its text (SQLAlchemy appends the
    statement and its parameters on later lines)."""
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text}"[:300]
