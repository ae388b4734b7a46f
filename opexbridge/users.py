"""``opexbridge users``: repair and check the OPEX accounts user_sync provisions.

Mount it in the ops CLI (``opexbridge/cli.py``)::

    from opexbridge.users import users_app
    app.add_typer(users_app, name="users")

or run it on its own: ``python -m opexbridge.users --help``.

- ``status`` — users per provisioning step.
- ``show USER_ID`` — one user's provisioning (never a secret).
- ``resync USER_ID`` / ``resync --failed`` — send users back to the running service's
  worker (a failed one resumes where it stopped; a provisioned one has its key checked,
  replaced if OPEX refuses it, and UserProvisioned published again), then follow them
  with a progress bar until they are done (``--no-wait`` to return at once).
- ``verify --all`` — a signed read with every provisioned user's API key; ``--fix``
  re-syncs the users whose key OPEX refuses.
- ``rotate-secrets`` — re-encrypt stored secrets with the first key of
  ``OPEXBRIDGE_SECRETS_KEY`` (after putting a new key first).

The database, OPEX and the keys come from the same environment as the service
(``DATABASE_URL``, ``USER_SYNC_SCHEMA``, ``OPEX_*``, ``OPEXBRIDGE_SECRETS_KEY``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from services.user_sync.adapters.store import ProvisioningStore
from services.user_sync.config import UserSyncSettings
from services.user_sync.domain.provisioning import TERMINAL, Step
from services.user_sync.handlers import OpexPort
from services.user_sync.reconcile import KeyCheck, check_key
from shared.credentials import SecretBox
from shared.db import Database, DatabaseSettings
from shared.opex import ApiKey, OpexClient, OpexSettings

__all__ = [
    "ResyncReport",
    "VerifyReport",
    "open_store",
    "resync_users",
    "users_app",
    "verify_users",
]

users_app = typer.Typer(
    help="user_sync: the OPEX accounts of platform users (re-sync, verify).",
    no_args_is_help=True,
)
console = Console()

Progressed = Callable[[int, int], None]
"""``(done, total)``."""


@asynccontextmanager
async def open_store(schema: str | None = None) -> AsyncIterator[ProvisioningStore]:
    """user_sync's store, from the environment, for a command's duration."""
    settings = UserSyncSettings()
    db = Database(DatabaseSettings().database_url, schema or settings.schema_name, pool_size=4)
    try:
        yield ProvisioningStore(db, SecretBox.from_settings(), owner="ops", service="ops")
    finally:
        await db.dispose()


# ---------------------------------------------------------------------------- re-sync


@dataclass
class ResyncReport:
    requeued: list[str] = field(default_factory=list)
    steps: dict[str, Step] = field(default_factory=dict)
    timed_out: bool = False

    @property
    def failed(self) -> list[str]:
        return sorted(u for u, s in self.steps.items() if s is Step.FAILED)

    @property
    def pending(self) -> list[str]:
        return sorted(u for u, s in self.steps.items() if s not in TERMINAL)


async def resync_users(
    store: ProvisioningStore,
    user_ids: Sequence[str] = (),
    *,
    failed: bool = False,
    wait: bool = True,
    timeout_s: float = 300.0,
    poll_s: float = 0.5,
    progress: Progressed = lambda done, total: None,
) -> ResyncReport:
    """Re-queue ``user_ids`` (and every failed user with ``failed``); with ``wait``,
    follow them until each is provisioned or failed again, or ``timeout_s``."""
    report = ResyncReport(requeued=await store.resync(list(user_ids), failed=failed))
    if not report.requeued:
        return report
    deadline = time.monotonic() + timeout_s
    while True:
        report.steps = await store.steps_of(report.requeued)
        done = sum(1 for s in report.steps.values() if s in TERMINAL)
        progress(done, len(report.requeued))
        if not wait or done == len(report.requeued):
            return report
        if time.monotonic() > deadline:
            report.timed_out = True
            return report
        await asyncio.sleep(poll_s)


# ----------------------------------------------------------------------------- verify


@dataclass
class VerifyReport:
    checked: int = 0
    ok: int = 0
    refused: list[KeyCheck] = field(default_factory=list)
    unreachable: list[KeyCheck] = field(default_factory=list)
    resynced: list[str] = field(default_factory=list)


async def verify_users(
    store: ProvisioningStore,
    opex: OpexPort,
    *,
    concurrency: int = 16,
    fix: bool = False,
    page: int = 500,
    progress: Progressed = lambda done, total: None,
) -> VerifyReport:
    """Check every provisioned user's key with a signed read (``/v3/account``)."""
    report = VerifyReport()
    total = await store.count_provisioned()
    progress(0, total)
    limit = asyncio.Semaphore(concurrency)
    ok: list[str] = []

    async def one(user_id: str, key: ApiKey) -> None:
        async with limit:
            check = await check_key(opex, user_id, key)
        report.checked += 1
        if check.ok:
            ok.append(user_id)
        elif check.refused:
            report.refused.append(check)
        else:
            report.unreachable.append(check)
        progress(report.checked, max(total, report.checked))

    after: str | None = None
    while True:
        keys = await store.provisioned_keys(after=after, limit=page)
        if not keys:
            break
        await asyncio.gather(*(one(user_id, key) for user_id, key in keys))
        after = keys[-1][0]
    report.ok = len(ok)
    await store.mark_verified(ok)
    if fix and report.refused:
        report.resynced = await store.resync([c.user_id for c in report.refused])
    return report


# ---------------------------------------------------------------------------- commands


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


SchemaOption = typer.Option(None, "--schema", help="user_sync's schema (USER_SYNC_SCHEMA).")


@users_app.command("status")
def status(schema: str | None = SchemaOption) -> None:
    """Users per provisioning step."""

    async def run() -> dict[Step, int]:
        async with open_store(schema) as store:
            return await store.counts()

    counts = asyncio.run(run())
    table = Table("step", "users")
    for step, n in counts.items():
        table.add_row(step.value, str(n))
    console.print(table)


@users_app.command("show")
def show(user_id: str, schema: str | None = SchemaOption) -> None:
    """One user's provisioning: step, attempts, OPEX uuid, last error (no secret)."""

    async def run() -> object:
        async with open_store(schema) as store:
            return await store.get(user_id)

    row = asyncio.run(run())
    if row is None:
        console.print(f"[red]no user {user_id!r}[/]")
        raise typer.Exit(1)
    console.print(row)


@users_app.command("resync")
def resync(
    user_id: str | None = typer.Argument(None, help="The platform user id to re-sync."),
    failed: bool = typer.Option(False, "--failed", help="Re-sync every failed user."),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Follow them until done."),
    timeout: float = typer.Option(300.0, help="Seconds to wait at most."),
    schema: str | None = SchemaOption,
) -> None:
    """Send a user (or every failed one) back to the running service's worker."""
    if user_id is None and not failed:
        console.print("[red]name a USER_ID or pass --failed[/]")
        raise typer.Exit(2)

    async def run() -> ResyncReport:
        async with open_store(schema) as store:
            with _progress() as bar:
                task = bar.add_task("re-syncing", total=None)

                def progressed(done: int, total: int) -> None:
                    bar.update(task, completed=done, total=total)

                return await resync_users(
                    store,
                    [user_id] if user_id else [],
                    failed=failed,
                    wait=wait,
                    timeout_s=timeout,
                    progress=progressed,
                )

    report = asyncio.run(run())
    if not report.requeued:
        console.print("nothing to re-sync")
        raise typer.Exit(1 if user_id else 0)
    provisioned = sum(1 for s in report.steps.values() if s is Step.PROVISIONED)
    console.print(
        f"{len(report.requeued)} re-queued: {provisioned} provisioned, "
        f"{len(report.failed)} failed, {len(report.pending)} in progress"
    )
    for failed_user in report.failed[:50]:
        console.print(f"[red]failed[/]  {failed_user}  (opexbridge users show {failed_user})")
    if report.failed:
        raise typer.Exit(1)
    if wait and report.timed_out:
        raise typer.Exit(3)


@users_app.command("verify")
def verify(
    all_users: bool = typer.Option(False, "--all", help="Check every provisioned user."),
    fix: bool = typer.Option(False, "--fix", help="Re-sync users whose key is refused."),
    concurrency: int = typer.Option(16, min=1, max=256),
    schema: str | None = SchemaOption,
) -> None:
    """Check that each provisioned user's API key still works on OPEX."""
    if not all_users:
        console.print("[red]pass --all (every provisioned user is checked)[/]")
        raise typer.Exit(2)

    async def run() -> VerifyReport:
        async with open_store(schema) as store, OpexClient(OpexSettings()) as opex:
            with _progress() as bar:
                task = bar.add_task("verifying keys", total=None)

                def progressed(done: int, total: int) -> None:
                    bar.update(task, completed=done, total=total)

                return await verify_users(
                    store, opex, concurrency=concurrency, fix=fix, progress=progressed
                )

    report = asyncio.run(run())
    table = Table("checked", "ok", "refused by OPEX", "OPEX unreachable", "re-synced")
    table.add_row(
        str(report.checked),
        str(report.ok),
        str(len(report.refused)),
        str(len(report.unreachable)),
        str(len(report.resynced)),
    )
    console.print(table)
    for check in [*report.refused, *report.unreachable][:50]:
        console.print(f"[red]{check.user_id}[/]  {check.detail}")
    if report.unreachable or (report.refused and not fix):
        raise typer.Exit(2)


@users_app.command("rotate-secrets")
def rotate_secrets(schema: str | None = SchemaOption) -> None:
    """Re-encrypt stored secrets with the first key of OPEXBRIDGE_SECRETS_KEY."""

    async def run() -> int:
        async with open_store(schema) as store:
            return await store.rotate_secrets()

    console.print(f"{asyncio.run(run())} credentials re-encrypted")


if __name__ == "__main__":
    users_app()
