"""A short `make chaos` (opexbridge/chaos.py) in CI: the whole suite as processes on the
shared broker and database, a few hundred orders from several users while each service
is SIGKILLed once, the sandbox is slow, failing, taking-but-not-answering and down, and
hostile commands arrive; then every check of the full run. The broker and PostgreSQL
restarts are left to ``make chaos`` (its private stack): CI shares them."""

from __future__ import annotations

from pathlib import Path

import pytest

from opexbridge.chaos import ChaosConfig, report, run_chaos
from shared.messaging import KafkaSettings

pytestmark = pytest.mark.integration


@pytest.mark.timeout(420)
async def test_small_chaos_run_loses_nothing(
    kafka_settings: KafkaSettings, database_url: str, tmp_path: Path
) -> None:
    cfg = ChaosConfig(
        orders=500,
        users=8,
        rate=25.0,
        kills_per_service=1,
        restart_kafka=False,
        restart_pg=False,
        fault_s=3.0,
        hostile_every=25,
        settle_timeout_s=150.0,
        private_stack=False,
    )
    lines: list[str] = []
    result = await run_chaos(
        cfg,
        kafka_bootstrap=kafka_settings.bootstrap_servers,
        database_url=database_url,
        say=lines.append,
        log_dir=tmp_path / "logs",
    )
    report(result, lines.append)
    text = "\n".join(lines)
    print(text)
    assert result.orders == 500
    assert sum(result.kills.values()) == 4, text
    assert result.hostile_inputs >= 15, text
    failed = [c.name for c in result.checks if not c.ok]
    assert failed == [], text
