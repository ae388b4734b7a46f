from __future__ import annotations

import asyncio

import httpx
from starlette.applications import Starlette

from shared.observability import Health, ops_app


async def _ok() -> bool:
    return True


async def _down() -> bool:
    return False


async def _hangs() -> bool:
    await asyncio.sleep(10)
    return True


async def _raises() -> bool:
    raise ConnectionError("refused")


def client(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_health_when_every_check_passes_then_200_with_each_check() -> None:
    health = Health("demo")
    health.add("database", _ok)
    health.add("kafka", _ok)
    response = await client(ops_app(health)).get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"] == {"database": True, "kafka": True}


async def test_health_when_a_check_fails_hangs_or_raises_then_503_naming_it() -> None:
    health = Health("demo", timeout=0.05)
    health.add("database", _ok)
    health.add("kafka", _down)
    health.add("opex", _hangs)
    health.add("cache", _raises)
    response = await client(ops_app(health)).get("/health")
    assert response.status_code == 503
    assert response.json()["checks"] == {
        "database": True,
        "kafka": False,
        "opex": False,
        "cache": False,
    }


async def test_metrics_when_scraped_then_exposes_the_shared_metrics() -> None:
    health = Health("demo")
    health.add("database", _ok)
    http = client(ops_app(health))
    await http.get("/health")
    text = (await http.get("/metrics")).text
    assert 'opexbridge_service_up{service="demo"} 1.0' in text
    assert "opexbridge_messages_consumed_total" in text
