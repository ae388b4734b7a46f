from __future__ import annotations

import asyncio

import httpx

from services.notifier.adapters.readiness import Readiness


def services_transport(up: dict[str, bool]) -> httpx.AsyncClient:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200 if up[request.url.host] else 503)

    return httpx.AsyncClient(transport=httpx.MockTransport(answer))


async def ok() -> bool:
    return True


async def fails() -> bool:
    raise OSError("refused")


async def test_report_when_all_up_then_ready_with_heartbeats() -> None:
    up = {"risk": True, "sync": True}
    async with services_transport(up) as http:
        readiness = Readiness(
            {"broker": ok, "database": ok},
            services={"risk_engine": "http://risk/health", "user_sync": "http://sync/health"},
            optional=frozenset({"user_sync"}),
            http=http,
            cache_s=0,
        )
        report = await readiness.report()
        up["sync"] = False  # optional: reported, not required
        optional_down = await readiness.report()
        up["risk"] = False
        required_down = await readiness.report()
    assert report.ready
    assert report.body["status"] == "ok"
    assert report.body["services"]["risk_engine"]["last_heartbeat"] is not None
    assert optional_down.ready
    assert optional_down.body["services"]["user_sync"]["ok"] is False
    assert not required_down.ready
    assert required_down.body["status"] == "impaired"
    # the heartbeat is the last time the service answered
    risk = required_down.body["services"]["risk_engine"]
    last_seen = optional_down.body["services"]["risk_engine"]["last_heartbeat"]
    assert (risk["ok"], risk["last_heartbeat"]) == (False, last_seen)


async def test_report_when_a_probe_fails_or_hangs_then_impaired_with_its_kind() -> None:
    async def hangs() -> bool:
        await asyncio.sleep(10)
        return True

    readiness = Readiness(
        {"broker": fails, "database": hangs, "opex": ok}, services={}, timeout_s=0.05, cache_s=0
    )
    report = await readiness.report()
    assert not report.ready
    assert report.body["checks"]["broker"] == {
        "ok": False,
        "latency_ms": report.body["checks"]["broker"]["latency_ms"],
        "error": "OSError",
    }
    assert report.body["checks"]["database"]["error"] == "TimeoutError"
    assert report.body["checks"]["opex"]["ok"] is True


async def test_report_when_cached_then_probes_run_once() -> None:
    calls = 0

    async def counted() -> bool:
        nonlocal calls
        calls += 1
        return True

    readiness = Readiness({"broker": counted}, services={}, cache_s=60)
    reports = await asyncio.gather(*(readiness.report() for _ in range(10)))
    await readiness.report()
    assert calls == 1
    assert all(r.ready for r in reports)
