from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shared.observability.metrics import SERVICE_UP

Check = Callable[[], Awaitable[bool]]


@dataclass(frozen=True)
class HealthReport:
    service: str
    healthy: bool
    checks: dict[str, bool]
    started_at: float
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "status": "ok" if self.healthy else "unavailable",
            "checks": self.checks,
            "uptime_s": round(time.time() - self.started_at, 1),
            **self.details,
        }


class Health:
    """Named readiness checks (``async () -> bool``), each bounded by a timeout."""

    def __init__(self, service: str, *, timeout: float = 2.0) -> None:
        self.service = service
        self._checks: dict[str, Check] = {}
        self._timeout = timeout
        self._started = time.time()
        self.last_error: str | None = None

    def add(self, name: str, check: Check) -> None:
        self._checks[name] = check

    async def _run(self, check: Check) -> bool:
        try:
            return await asyncio.wait_for(check(), self._timeout)
        except Exception:
            return False

    async def report(self) -> HealthReport:
        names = list(self._checks)
        results = await asyncio.gather(*(self._run(self._checks[n]) for n in names))
        checks = dict(zip(names, results, strict=True))
        healthy = all(results)
        SERVICE_UP.labels(service=self.service).set(1 if healthy else 0)
        details = {"last_error": self.last_error} if self.last_error else {}
        return HealthReport(self.service, healthy, checks, self._started, details)


async def _metrics(_request: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def ops_routes(health: Health) -> list[Route]:
    async def health_endpoint(_request: Request) -> Response:
        report = await health.report()
        return JSONResponse(report.as_dict(), status_code=200 if report.healthy else 503)

    return [Route("/health", health_endpoint), Route("/metrics", _metrics)]


def ops_app(health: Health) -> Starlette:
    """A tiny ASGI app with ``/health`` (200 or 503, JSON) and ``/metrics``."""
    return Starlette(routes=ops_routes(health))
