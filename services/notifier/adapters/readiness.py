"""``GET /api/trading/health``: can a trader trade right now? (README.md, REST API, Health)

Checks, concurrently, each bounded by ``NOTIFIER_HEALTH_TIMEOUT``:

- ``broker``: the Kafka cluster answers (the FastStream broker's ping);
- ``database``: the notifier's PostgreSQL answers ``select 1``;
- ``opex``: OPEX's ``/actuator/health`` says ``UP`` (through `shared.opex`);
- ``services``: each URL of ``NOTIFIER_SERVICE_HEALTH_URLS`` (a service's own
  ``/health``) answers 200. A service's ``last_heartbeat`` is the last time it did, as
  seen by this process (``null`` if never since the notifier started).

Trading is impaired (503) when any check fails, except services named in
``NOTIFIER_OPTIONAL_SERVICES`` (reported, not required). A report is reused for
``NOTIFIER_HEALTH_CACHE`` seconds and concurrent callers share one round of checks, so
a flood of probes costs the dependencies one probe each per period.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from shared.contracts import format_timestamp

__all__ = ["Readiness", "ReadinessReport"]

Probe = Callable[[], Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class ReadinessReport:
    ready: bool
    body: dict[str, Any]


def _now() -> str:
    return format_timestamp(datetime.now(UTC))


class Readiness:
    def __init__(
        self,
        probes: Mapping[str, Probe],
        *,
        services: Mapping[str, str],
        optional: frozenset[str] = frozenset(),
        http: httpx.AsyncClient | None = None,
        timeout_s: float = 1.5,
        cache_s: float = 1.0,
    ) -> None:
        self._probes = dict(probes)
        self._services = dict(services)
        self._optional = optional
        self._http = http
        self._timeout = timeout_s
        self._cache_s = cache_s
        self._heartbeats: dict[str, str] = {}
        self._last: tuple[float, ReadinessReport] | None = None
        self._running: asyncio.Task[ReadinessReport] | None = None

    async def report(self) -> ReadinessReport:
        last = self._last
        if last is not None and time.monotonic() - last[0] < self._cache_s:
            return last[1]
        if self._running is None or self._running.done():
            self._running = asyncio.create_task(self._check())
        report = await asyncio.shield(self._running)
        self._last = (time.monotonic(), report)
        return report

    async def _timed(self, probe: Probe) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            ok = bool(await asyncio.wait_for(probe(), self._timeout))
            error = None if ok else "not ready"
        except Exception as exc:  # any failure is "not ready"; the kind is enough
            ok, error = False, type(exc).__name__
        result: dict[str, Any] = {
            "ok": ok,
            "latency_ms": round((time.perf_counter() - started) * 1000, 1),
        }
        if error is not None:
            result["error"] = error
        return result

    def _service_probe(self, url: str) -> Probe:
        async def probe() -> bool:
            if self._http is None:
                return False
            return (await self._http.get(url)).status_code == 200

        return probe

    async def _check(self) -> ReadinessReport:
        names = list(self._probes)
        services = list(self._services)
        results = await asyncio.gather(
            *(self._timed(self._probes[n]) for n in names),
            *(self._timed(self._service_probe(self._services[s])) for s in services),
        )
        checks = dict(zip(names, results[: len(names)], strict=True))
        service_checks: dict[str, Any] = {}
        for name, result in zip(services, results[len(names) :], strict=True):
            if result["ok"]:
                self._heartbeats[name] = _now()
            service_checks[name] = {
                **result,
                "required": name not in self._optional,
                "last_heartbeat": self._heartbeats.get(name),
            }
        ready = all(c["ok"] for c in checks.values()) and all(
            c["ok"] for c in service_checks.values() if c["required"]
        )
        body = {
            "status": "ok" if ready else "impaired",
            "checked_at": _now(),
            "checks": checks,
            "services": service_checks,
        }
        return ReadinessReport(ready, body)
