"""Logs, metrics and health for every service.

- :func:`configure_logging` — structlog, JSON when stderr is not a terminal, with the
  ``correlation_id`` bound per message and secrets redacted.
- :mod:`metrics <shared.observability.metrics>` — the Prometheus metrics the shared
  plumbing updates.
- :class:`Health` and :func:`ops_app` — ``/health`` and ``/metrics`` for a service.
"""

from shared.observability._health import Health, HealthReport, ops_app, ops_routes
from shared.observability._logging import configure_logging, redact

__all__ = ["Health", "HealthReport", "configure_logging", "ops_app", "ops_routes", "redact"]
