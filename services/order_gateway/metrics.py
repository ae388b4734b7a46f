"""The order gateway's own Prometheus metrics (`opexbridge top` reads the first two)."""

from prometheus_client import Counter, Gauge, Histogram

IN_FLIGHT = Gauge(
    "opexbridge_gateway_orders_in_flight",
    "Orders sent to OPEX (or maybe sent) and not yet correlated with an OPEX order.",
)
FILLED = Counter(
    "opexbridge_gateway_orders_filled_total", "Orders that reached FILLED (late fills too)."
)
OPEN = Gauge("opexbridge_gateway_orders_open", "Orders the gateway holds that are not finished.")
HELD_STOPS = Gauge("opexbridge_gateway_held_stops", "Stop orders waiting for their trigger.")
EVENTS = Counter(
    "opexbridge_gateway_order_events_total", "Order events published, by type.", ["type"]
)
PLACEMENTS = Counter(
    "opexbridge_gateway_placements_total",
    "Placement requests by outcome (sent, ambiguous, not_sent, rate_limited, refused).",
    ["outcome"],
)
CANCELS = Counter(
    "opexbridge_gateway_cancel_requests_total",
    "Cancel requests sent to OPEX by outcome (sent, refused, retry).",
    ["outcome"],
)
OPEX_REQUESTS = Counter(
    "opexbridge_gateway_opex_requests_total",
    "OPEX requests by call and outcome (ok, refused, rate_limited, unavailable, ambiguous).",
    ["call", "outcome"],
)
OPEX_SECONDS = Histogram(
    "opexbridge_gateway_opex_request_seconds",
    "OPEX request latency by call.",
    ["call"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
ACCEPT_SECONDS = Histogram(
    "opexbridge_gateway_accept_seconds",
    "From the approval's arrival to OrderAccepted.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
ILLEGAL = Counter(
    "opexbridge_gateway_illegal_transitions_total",
    "Transitions the state table refused (logged, not applied).",
)
ANOMALIES = Counter(
    "opexbridge_gateway_anomalies_total",
    "Observations that did not fit an order (logged): a trade of another order, an overfill...",
)
AMBIGUOUS = Counter(
    "opexbridge_gateway_ambiguous_correlations_total",
    "Intents with more than one identical OPEX order in their window (earliest claimed).",
)
RECONCILED = Counter(
    "opexbridge_gateway_reconciliation_fixes_total",
    "Differences reconciliation fixed, by kind (event, external, unresolved).",
    ["kind"],
)
BREAKER_OPEN = Gauge(
    "opexbridge_gateway_breaker_open", "1 while the circuit breaker keeps requests from OPEX."
)
RELOADS = Counter(
    "opexbridge_gateway_state_reloads_total",
    "Times the in-memory book was reloaded from the table after a failed write.",
)
