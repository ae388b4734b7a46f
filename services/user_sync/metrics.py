"""user_sync's Prometheus metrics (the shared plumbing adds its own)."""

from prometheus_client import Counter, Gauge, Histogram

PROVISIONED = Counter(
    "opexbridge_user_sync_provisioned_total", "Users whose provisioning reached PROVISIONED."
)
FAILED = Counter(
    "opexbridge_user_sync_failed_total",
    "Users whose provisioning failed, by reason.",
    ["reason"],
)
SETBACKS = Counter(
    "opexbridge_user_sync_failed_attempts_total",
    "Failed attempts (retries and steps back), by step and error code.",
    ["step", "code"],
)
ABANDONED_KEYS = Counter(
    "opexbridge_user_sync_abandoned_api_keys_total",
    "API keys left unused on OPEX (answer lost, or refused later).",
)
STEP_SECONDS = Histogram(
    "opexbridge_user_sync_step_seconds",
    "Time of one provisioning step (the OPEX calls and the commit), by step.",
    ["step"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
IN_FLIGHT = Gauge("opexbridge_user_sync_in_flight", "Users being driven by this process now.")
USERS = Gauge(
    "opexbridge_user_sync_users", "Users per provisioning step (reconcile job).", ["step"]
)
OPEX_UP = Gauge(
    "opexbridge_user_sync_opex_up", "1 when OPEX answered the reconcile job's health check."
)
