"""The client against the real sandbox app, served by uvicorn on 127.0.0.1 (a free port)
in a thread of its own: market maker off, a short listing delay, rate limits off unless a
test turns them on (`PUT /sandbox/faults`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

import services.opex_sandbox.app as sandbox_app
import services.opex_sandbox.config as sandbox_config
from shared.opex import OpexClient
from tests.integration.shared.opex.support import (
    ADMIN_KEY,
    ADMIN_SECRET,
    CANCEL_DELAY_MS,
    LISTING_DELAY_MS,
    RATE_LIMIT,
    TAKE_NO_ANSWER_DELAY_S,
    Control,
    Sandbox,
    settings_for,
)
from tests.support.asgi import serve_in_thread


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    config = sandbox_config.SandboxConfig(
        host="127.0.0.1",
        port=0,
        market_maker=False,
        listing_delay_ms=LISTING_DELAY_MS,
        cancel_delay_ms=CANCEL_DELAY_MS,
        rate_limit_enabled=False,
        rate_limit_requests=RATE_LIMIT,
        rate_limit_window_s=60,
        admin_api_key=ADMIN_KEY,
        admin_api_secret=ADMIN_SECRET,
        take_no_answer_delay_s=TAKE_NO_ANSWER_DELAY_S,
    )
    app = sandbox_app.create_app(config)
    with serve_in_thread(app) as url:
        yield Sandbox(url=url, config=config)


@pytest.fixture(autouse=True, params=["lean", "httpx", "aiohttp"])
def http_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs on every backend: each client it makes (`settings_for`) reads
    ``OPEX_HTTP_BACKEND``."""
    backend: str = request.param
    monkeypatch.setenv("OPEX_HTTP_BACKEND", backend)
    return backend


@pytest.fixture
async def opex(sandbox: Sandbox, http_backend: str) -> AsyncIterator[OpexClient]:
    async with OpexClient(settings_for(sandbox)) as client:
        yield client


@pytest.fixture(autouse=True)
async def control(sandbox: Sandbox) -> AsyncIterator[Control]:
    """Every test starts on a reset sandbox (no users, orders or faults) and leaves no
    fault behind."""
    async with httpx.AsyncClient(base_url=sandbox.url, timeout=5) as http:
        handle = Control(http)
        await handle.clear_faults()
        (await http.post("/sandbox/reset")).raise_for_status()
        try:
            yield handle
        finally:
            await handle.clear_faults()
