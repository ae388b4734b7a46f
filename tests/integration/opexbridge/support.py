"""The ``opexbridge`` command, and a way to run it
from an async test (``asyncio.run`` cannot run inside the test's loop)."""

from __future__ import annotations

import asyncio

import typer
from typer.testing import CliRunner, Result

from opexbridge.cli import app


def ops_cli() -> typer.Typer:
    """The real ``opexbridge`` command, as installed."""
    return app


async def invoke(*args: str) -> Result:
    runner = CliRunner()
    cli = ops_cli()
    return await asyncio.to_thread(lambda: runner.invoke(cli, list(args)))
