"""Prometheus metrics shared by the plumbing of every service (one process, one
registry). Service-specific metrics live in the services."""

from prometheus_client import Counter, Gauge, Histogram

MESSAGES_CONSUMED = Counter(
    "opexbridge_messages_consumed_total",
    "Messages a consumer finished with, by outcome (processed, duplicate, dead_lettered).",
    ["consumer", "topic", "outcome"],
)
PROCESSING_SECONDS = Histogram(
    "opexbridge_message_processing_seconds",
    "Time from receiving a message to finishing it, database commit included.",
    ["consumer", "topic"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
DLQ_WRITES = Counter(
    "opexbridge_dlq_writes_total",
    "Messages written to a dead-letter topic, by original topic.",
    ["service", "topic"],
)
OUTBOX_PUBLISHED = Counter(
    "opexbridge_outbox_published_total",
    "Outbox messages acknowledged by the broker, by topic.",
    ["service", "topic"],
)
SERVICE_UP = Gauge(
    "opexbridge_service_up",
    "1 when the service's last health check passed.",
    ["service"],
)
CONSUMER_LAG = Gauge(
    "opexbridge_consumer_lag_messages",
    "Records behind the partition's high watermark after the last batch a consumer took.",
    ["consumer", "topic", "partition"],
)
OPEX_REQUEST_SECONDS = Histogram(
    "opexbridge_opex_request_seconds",
    "OPEX requests made by the shared client, by method, route (ids and amounts as {}) "
    "and outcome (ok or the OpexError's class).",
    ["method", "route", "outcome"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
