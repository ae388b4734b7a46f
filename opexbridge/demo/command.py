"""The demo's command line: ``opexbridge demo`` and ``python -m opexbridge.demo``."""

from __future__ import annotations

import asyncio
import os
import signal
from types import FrameType

import typer
from rich.console import Console

from opexbridge.demo.runner import DemoOptions, DemoResult, run_demo
from shared.credentials import DEFAULT_SCHEMA
from shared.db import DatabaseSettings
from shared.messaging import KafkaSettings
from shared.observability import configure_logging
from shared.opex import OpexSettings

__all__ = ["demo_command", "main", "options_from_env"]


def options_from_env(**changes: object) -> DemoOptions:
    """Options read the way the services read their settings (the notifier's JWT
    secret, the risk engine's group ids, user_sync's schema), then ``changes``."""
    from services.notifier.config import NotifierSettings
    from services.risk_engine.config import ServiceSettings as RiskServiceSettings

    notifier = NotifierSettings()
    risk = RiskServiceSettings()
    options = DemoOptions(
        notifier_url=os.environ.get("NOTIFIER_URL", f"http://127.0.0.1:{notifier.port}"),
        risk_group=risk.group_id,
        risk_market_group=f"{risk.group_id}-market-{risk.instance}",
        credentials_schema=os.environ.get("USER_SYNC_SCHEMA", DEFAULT_SCHEMA),
        jwt_secret=notifier.hs256_secret(),
        jwt_audience=notifier.jwt_audience,
        jwt_issuer=notifier.jwt_issuer,
    )
    for name, value in changes.items():
        if value is not None:
            setattr(options, name, value)
    return options


def _run(options: DemoOptions, console: Console) -> DemoResult:
    return asyncio.run(
        run_demo(
            KafkaSettings(),
            OpexSettings(),
            DatabaseSettings().database_url,
            options,
            console=console,
        )
    )


def demo_command(
    users: int = typer.Option(4, "--users", help="How many demo users (1-8)."),
    once: bool = typer.Option(False, "--once", help="The script only, then exit."),
    duration: float | None = typer.Option(
        None, "--duration", help="Seconds of stream after the script (default: until Ctrl-C)."
    ),
    pace: float = typer.Option(0.35, "--pace", help="Seconds between scripted commands."),
    every: float = typer.Option(2.0, "--every", help="Seconds between streamed commands."),
    prefix: str | None = typer.Option(None, "--prefix", help="Topic name prefix."),
) -> None:
    """Register, fund and trade a few demo users while a live view shows the pipeline."""
    options = options_from_env(
        users=users,
        duration_s=0.0 if once else duration,
        pace_s=pace,
        stream_every_s=every,
        prefix=prefix,
    )
    configure_logging("opexbridge-demo", level=os.environ.get("LOG_LEVEL", "WARNING"))
    console = Console()
    try:
        result = _run(options, console)
    except KeyboardInterrupt:
        console.print("[dim]demo stopped[/]")
        return
    except (RuntimeError, LookupError, OSError) as exc:
        console.print(f"[red]demo: {exc}[/]")
        raise typer.Exit(2) from None
    if result.mismatches:
        raise typer.Exit(1)


def main() -> None:
    """``python -m opexbridge.demo``: SIGTERM (make run's Ctrl-C) stops it like Ctrl-C."""

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    typer.run(demo_command)
