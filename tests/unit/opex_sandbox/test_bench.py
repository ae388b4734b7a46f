from __future__ import annotations

from services.opex_sandbox.bench import bench_matching


def test_bench_matching_when_small_run_then_positive_rate_and_sound_engine() -> None:
    # bench_matching audits the engine after the run and fails on any violated invariant
    assert bench_matching(3000) > 0
