"""The notifier's Prometheus metrics (served on ``/metrics`` with the shared ones)."""

from prometheus_client import Counter, Gauge, Histogram

CONNECTIONS = Gauge(
    "notifier_connections",
    "Open WebSocket connections, by state (pending: not yet authenticated).",
    ["state"],
)
PUSHED = Counter(
    "notifier_messages_pushed_total",
    "Frames written to clients, by kind (user, replay, ticker, control).",
    ["kind"],
)
DROPPED = Counter(
    "notifier_messages_dropped_total",
    "Frames never written: conflated tickers replaced by a newer one, or queued frames "
    "discarded when a slow client was disconnected.",
    ["reason"],
)
DISCONNECTS = Counter(
    "notifier_disconnects_total",
    "Connections the server closed, by close reason.",
    ["reason"],
)
RESUMES = Counter(
    "notifier_resumes_total",
    "Subscriptions to user channels, by outcome (live, recovered, not_recovered).",
    ["outcome"],
)
STREAM_EVENTS = Counter(
    "notifier_stream_events_total",
    "User events read from Kafka, by outcome (recorded, duplicate, dead_lettered).",
    ["outcome"],
)
KAFKA_LAG = Gauge(
    "notifier_kafka_lag_seconds",
    "Age of the newest record of the last batch when its state was committed and pushed "
    "(how far the notifier is behind Kafka).",
)
BATCH_SECONDS = Histogram(
    "notifier_batch_seconds",
    "Time to record and push one Kafka batch of user events.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
