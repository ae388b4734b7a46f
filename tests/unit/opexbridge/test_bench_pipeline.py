"""`make bench`'s pure parts: percentiles, steps, the limit figures and the table."""

from __future__ import annotations

import os

from opexbridge.bench_pipeline import Step, Tracker, _limit_figures, _step, _table, pct


def test_pct_picks_the_ranked_value() -> None:
    values = [float(v) for v in range(1, 101)]
    assert pct(values, 0.5) == 51.0
    assert pct(values, 0.99) == 100.0
    assert pct([], 0.5) is None


def test_step_counts_accepted_and_refused_orders() -> None:
    tracker = Tracker()
    tracker.sent = {"a": 0.0, "b": 0.5, "c": 1.0}
    tracker.accepted = {"a": 0.1, "b": 2.0}
    tracker.terminal = {"c": "OrderRejected"}
    step = _step(tracker, 10, ["a", "b", "c"])
    assert (step.sent, step.accepted, step.refused) == (3, 2, 1)
    assert step.per_s == 1.0  # two answers over the two seconds from first send
    assert step.p50_ms == 1500.0


def test_limit_figures_turn_cpu_per_order_into_a_ceiling() -> None:
    paced = {"cpu_ms_per_order": {"kafka": 3.0, "gateway": 1.0, "total": 4.0}, "machine_busy": 0.97}
    figures = _limit_figures({"kafka": 0.2, "total": 0.3}, paced)
    cores = os.cpu_count() or 1
    assert figures["cpu_bound_orders_per_s"] == round(cores * 1000 / 4.0, 1)
    assert figures["paced_machine_busy"] == 0.97
    no_orders = _limit_figures({}, {"cpu_ms_per_order": {}, "machine_busy": None})
    assert no_orders["cpu_bound_orders_per_s"] is None


def test_table_names_the_costliest_process_first() -> None:
    result = {
        "orders_per_s": 80.0,
        "cores": 2,
        "paced_machine_busy": 0.98,
        "paced_cpu_ms_per_order": {"kafka": 9.5, "order_gateway": 6.0, "total": 15.5},
        "cpu_bound_orders_per_s": 129.0,
        "idle_cores_busy": {"kafka": 0.2},
        "steps": [Step(10, 50, 50, 9.8, 150.0, 300.0).__dict__],
    }
    table = _table(result)
    assert "each order cost 15.5 CPU ms" in table
    assert "at most 129.0 orders/s" in table
    assert table.index("kafka") < table.index("order_gateway")
    assert "step    10/s: 50/50 accepted" in table
