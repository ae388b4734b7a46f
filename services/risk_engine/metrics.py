"""The risk engine's own Prometheus metrics."""

from prometheus_client import Counter

DECISIONS = Counter(
    "opexbridge_risk_decisions_total",
    "Commands decided, by outcome (approved, rejected, cancel_passed, cancel_refused) and reason.",
    ["outcome", "reason"],
)
DRIFTS = Counter(
    "opexbridge_risk_balance_drifts_total",
    "Differences between OPEX's balance snapshots and what the engine expected.",
)
REPLAYED = Counter(
    "opexbridge_risk_journal_replayed_total",
    "Journal rows replayed to rebuild the state at start-up.",
)
