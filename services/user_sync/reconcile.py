"""The reconcile job: every ``reconcile_interval_s``, repair what the event flow alone
would leave behind.

1. Count users per step (the ``opexbridge_user_sync_users`` gauge).
2. If OPEX answers its health check, re-queue users that failed only because OPEX was
   unavailable, each at most ``auto_retries`` times (a long outage does not need a
   person to re-sync every user afterwards).
3. Check the keys of a few provisioned users (``verify_batch``, least recently checked
   first, each at most every ``verify_every_s``) with a signed read; a key OPEX refuses
   is replaced (the user is re-synced: new key, wallets checked, UserProvisioned again).

Users stuck on a dead process need nothing here: their lease expires and the worker of
any live process picks them up.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from services.user_sync import metrics
from services.user_sync.adapters.store import ProvisioningStore
from services.user_sync.handlers import OpexPort
from shared.opex import ApiKey, OpexAuthError, OpexError

__all__ = ["KeyCheck", "ReconcileReport", "Reconciler", "check_key"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class KeyCheck:
    user_id: str
    ok: bool
    refused: bool
    """OPEX answered and refused the key (as opposed to: could not be asked)."""
    detail: str = ""


async def check_key(opex: OpexPort, user_id: str, key: ApiKey) -> KeyCheck:
    """Does OPEX accept ``key``? One signed read (``/v3/account``, not rate-limited)."""
    try:
        await opex.account(key)
    except OpexAuthError as error:
        return KeyCheck(user_id, ok=False, refused=True, detail=str(error)[:200])
    except OpexError as error:
        return KeyCheck(user_id, ok=False, refused=False, detail=str(error)[:200])
    return KeyCheck(user_id, ok=True, refused=False)


@dataclass
class ReconcileReport:
    opex_up: bool = False
    requeued: list[str] = field(default_factory=list)
    verified: int = 0
    rekeyed: list[str] = field(default_factory=list)


class Reconciler:
    def __init__(
        self,
        store: ProvisioningStore,
        opex: OpexPort,
        *,
        interval_s: float = 60.0,
        auto_retries: int = 3,
        verify_every_s: float = 86_400.0,
        verify_batch: int = 50,
        on_requeued: Callable[[], None] = lambda: None,
    ) -> None:
        self._store = store
        self._opex = opex
        self._interval = interval_s
        self._auto_retries = auto_retries
        self._verify_every = verify_every_s
        self._verify_batch = verify_batch
        self._on_requeued = on_requeued
        self._task: asyncio.Task[None] | None = None

    async def run_once(self) -> ReconcileReport:
        report = ReconcileReport()
        counts = await self._store.counts()
        for step, n in counts.items():
            metrics.USERS.labels(step=step).set(n)
        try:
            report.opex_up = (await self._opex.health()).up
        except OpexError:
            report.opex_up = False
        metrics.OPEX_UP.set(1 if report.opex_up else 0)
        if not report.opex_up:
            return report
        if self._auto_retries:
            report.requeued = await self._store.requeue_unavailable(self._auto_retries)
            if report.requeued:
                log.info("reconcile_requeued_unavailable", users=len(report.requeued))
        keys = await self._store.due_for_verification(self._verify_every, self._verify_batch)
        checks = await asyncio.gather(*(check_key(self._opex, u, k) for u, k in keys))
        ok = [c.user_id for c in checks if c.ok]
        await self._store.mark_verified(ok)
        report.verified = len(ok)
        refused = [c.user_id for c in checks if c.refused]
        if refused:
            report.rekeyed = await self._store.resync(refused)
            log.warning("reconcile_keys_refused", users=len(refused))
        if report.requeued or report.rekeyed:
            self._on_requeued()
        return report

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("reconcile_failed", error=f"{type(error).__name__}"[:200])

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="user_sync-reconcile")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
