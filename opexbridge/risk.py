"""``opexbridge risk``: trading states and limits of the risk engine, changed at run time.

Requests are written to the risk engine's schema; the engine applies them before its
next batch (and within a second when idle) and publishes TradingStateChanged."""

from __future__ import annotations

import asyncio
import getpass
from decimal import Decimal

import typer
from rich.console import Console
from rich.table import Table

from services.risk_engine.adapters import store
from services.risk_engine.config import LimitOverrides, RiskSettings
from shared.contracts import TradingState
from shared.db import Database, DatabaseSettings

app = typer.Typer(help="Risk engine: halt, reduce, resume, limits.", no_args_is_help=True)
limits_app = typer.Typer(help="Global and per-user limits.", no_args_is_help=True)
app.add_typer(limits_app, name="limits")
console = Console()
SCHEMA = typer.Option("risk_engine", "--schema", envvar="RISK_ENGINE_SCHEMA", hidden=True)


def _db(schema: str) -> Database:
    return Database.from_settings(DatabaseSettings(), schema)


def _actor() -> str:
    return f"ops:{getpass.getuser()}"


async def _request(schema: str, state: TradingState, user: str | None, reason: str) -> None:
    db = _db(schema)
    try:
        async with db.transaction() as session:
            await store.request_state(
                session, state, user_id=user, requested_by=_actor(), reason=reason
            )
    finally:
        await db.dispose()


def _state_command(name: str, state: TradingState, verb: str, help_text: str) -> None:
    def command(
        user: str | None = typer.Option(None, help="One user; all users when omitted."),
        reason: str = typer.Option(..., help="Why: recorded in TradingStateChanged."),
        schema: str = SCHEMA,
    ) -> None:
        asyncio.run(_request(schema, state, user, reason))
        console.print(f"{verb} requested for {user or 'everyone'}: applied on the next batch")

    app.command(name, help=help_text)(command)


_state_command("halt", TradingState.HALTED, "halt", "Refuse every new order (cancels pass).")
_state_command(
    "reduce", TradingState.REDUCING, "reduce-only", "Let only position-reducing orders through."
)
_state_command("resume", TradingState.ACTIVE, "resume", "Back to normal trading.")


@limits_app.command("set")
def limits_set(
    user: str | None = typer.Option(None, help="One user's overrides; global when omitted."),
    max_position_size: Decimal | None = typer.Option(None),
    max_daily_loss: Decimal | None = typer.Option(None),
    min_margin_ratio: Decimal | None = typer.Option(None),
    max_leverage: Decimal | None = typer.Option(None),
    max_order_notional: Decimal | None = typer.Option(None),
    max_open_orders: int | None = typer.Option(None),
    max_orders_per_second: int | None = typer.Option(None),
    schema: str = SCHEMA,
) -> None:
    """Set limits (only the ones given); checked against the allowed ranges first."""
    overrides = LimitOverrides(
        max_position_size=max_position_size,
        max_daily_loss=max_daily_loss,
        min_margin_ratio=min_margin_ratio,
        max_leverage=max_leverage,
        max_order_notional=max_order_notional,
        max_open_orders=max_open_orders,
        max_orders_per_second=max_orders_per_second,
    )
    try:
        overrides.apply(RiskSettings().limits())
    except ValueError as error:
        raise typer.BadParameter(str(error)) from error

    async def run() -> None:
        db = _db(schema)
        try:
            async with db.transaction() as session:
                scope = f"user:{user}" if user else store.GLOBAL
                await store.save_limits(session, scope, overrides, _actor())
        finally:
            await db.dispose()

    asyncio.run(run())
    console.print(f"limits set for {user or 'everyone'}: {store.overrides_to_json(overrides)}")


@limits_app.command("show")
def limits_show(schema: str = SCHEMA) -> None:
    """The limits in force: global, and each user's overrides."""

    async def run() -> tuple[object, dict[str, LimitOverrides]]:
        db = _db(schema)
        try:
            async with db.transaction() as session:
                return await store.load_limits(session, RiskSettings().limits())
        finally:
            await db.dispose()

    global_limits, users = asyncio.run(run())
    table = Table("scope", "limits")
    table.add_row("global", str(global_limits))
    for user, overrides in sorted(users.items()):
        table.add_row(f"user {user}", str(store.overrides_to_json(overrides)))
    console.print(table)
