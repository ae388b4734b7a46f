"""The HTTP half of `make bench-sandbox`, on a small scale: a sandbox subprocess, users set up
over HTTP, orders through the client and through the minimal client, a clean audit."""

from __future__ import annotations

import json
from pathlib import Path

from services.opex_sandbox.bench import bench_http, write_results


def test_bench_http_when_small_run_then_orders_placed_and_engine_sound(tmp_path: Path) -> None:
    result = bench_http(300, 5.0, concurrency=4, users=2)
    assert result.placed > 0
    assert result.failed == 0
    assert result.orders_per_s > 0
    assert result.server_placed > 0
    assert result.server_orders_per_s > 0
    path = write_results({"http_orders_per_s": round(result.orders_per_s)}, tmp_path / "b.json")
    assert json.loads(path.read_text())["http_orders_per_s"] > 0
