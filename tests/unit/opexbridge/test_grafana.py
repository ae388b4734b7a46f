"""deploy/grafana: the dashboard's queries name metrics the code defines, and Grafana's
provisioning points at the dashboard and the Prometheus data source."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tests.unit.opexbridge.deploy_support import REPO, load_yaml

GRAFANA = REPO / "deploy" / "grafana"
DASHBOARD: dict[str, Any] = json.loads(
    (GRAFANA / "dashboards" / "opexbridge.json").read_text(encoding="utf-8")
)
NOT_YET_DEFINED = frozenset(
    {"opexbridge_gateway_orders_in_flight", "opexbridge_gateway_orders_filled_total"}
)
"""The order gateway's figures, named before the gateway defines them (`opexbridge top`
reads the same names)."""

DEFINITION = re.compile(
    r"\b(Counter|Gauge|Histogram|Summary)\(\s*\"([a-zA-Z_:][a-zA-Z0-9_:]*)\"", re.MULTILINE
)
PROMQL_WORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
     "bool", "offset", "inf", "nan"}
)  # fmt: skip


def defined_metrics() -> set[str]:
    """Every series name a Prometheus metric defined under shared/ or services/ exports."""
    names: set[str] = set()
    for path in [*(REPO / "shared").rglob("*.py"), *(REPO / "services").rglob("*.py")]:
        for kind, name in DEFINITION.findall(path.read_text(encoding="utf-8")):
            if kind == "Counter":
                names.add(name if name.endswith("_total") else name + "_total")
            elif kind in ("Histogram", "Summary"):
                names.update(name + suffix for suffix in ("_bucket", "_sum", "_count"))
                if kind == "Summary":
                    names.add(name)
            else:
                names.add(name)
    return names


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (no parser: label matchers, grouping
    clauses, ranges and strings are removed first; what is left and not followed by
    ``(`` is a metric)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = set()
    for match in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr):
        rest = expr[match.end() :].lstrip()
        if rest.startswith("(") or match.group() in PROMQL_WORDS:
            continue
        names.add(match.group())
    return names


def _panels() -> list[dict[str, Any]]:
    return [panel for panel in DASHBOARD["panels"] if panel["type"] != "row"]


def _expressions() -> list[str]:
    return [target["expr"] for panel in _panels() for target in panel["targets"]]


def test_metric_names_parses_promql() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, consumer) (rate(a_bucket{x="y"}[$__rate_interval])))'
        " / sum without (topic) (b_total) + on(service) c"
    )
    assert metric_names(expr) == {"a_bucket", "b_total", "c"}


def test_every_metric_the_dashboard_reads_is_defined_in_the_code() -> None:
    defined = defined_metrics()
    assert "opexbridge_messages_consumed_total" in defined
    assert "notifier_batch_seconds_bucket" in defined
    used = set().union(*(metric_names(expr) for expr in _expressions()))
    unknown = used - defined - NOT_YET_DEFINED
    assert not unknown, f"the dashboard reads metrics no code defines: {sorted(unknown)}"


def test_the_dashboard_shows_the_pipeline_end_to_end() -> None:
    used = set().union(*(metric_names(expr) for expr in _expressions()))
    for family in (
        "opexbridge_messages_consumed_total",
        "opexbridge_message_processing_seconds_bucket",
        "opexbridge_dlq_writes_total",
        "opexbridge_outbox_published_total",
        "opexbridge_risk_decisions_total",
        "opexbridge_gateway_orders_in_flight",
        "opexbridge_gateway_orders_filled_total",
        "notifier_connections",
        "notifier_kafka_lag_seconds",
    ):
        assert family in used, family


def test_panels_are_well_formed() -> None:
    ids = [panel["id"] for panel in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids))
    for panel in _panels():
        assert panel["targets"], panel["title"]
        assert panel["datasource"]["uid"] == _datasource()["uid"]
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        assert panel["gridPos"]["x"] >= 0
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24


def _datasource() -> dict[str, Any]:
    provisioning = load_yaml(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")
    (source,) = provisioning["datasources"]
    return dict(source)


def test_provisioning_loads_the_dashboard_from_where_compose_mounts_it() -> None:
    assert _datasource()["type"] == "prometheus"
    compose = load_yaml(REPO / "docker-compose.yml")["services"]["grafana"]
    mounts = dict(volume.split(":")[:2] for volume in compose["volumes"])
    provider = load_yaml(GRAFANA / "provisioning" / "dashboards" / "opexbridge.yml")
    (source,) = provider["providers"]
    folder = next(src for src, dst in mounts.items() if dst == source["options"]["path"])
    assert (REPO / folder / "opexbridge.json").is_file()
    assert Path(mounts["./deploy/grafana/provisioning"]) == Path("/etc/grafana/provisioning")
