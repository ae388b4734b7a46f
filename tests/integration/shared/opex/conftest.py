"""The client against the real sandbox app, served by uvicorn on 127.0.0.1 (a free port)
in a thread of its own: market maker off, a short listing delay, rate limits off unless a
test turns them on (`PUT /sandbox/faults`). Skipped while the sandbox app does not exist."""

from __future__ import annotations

import socket
import threading
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

sandbox_app = pytest.importorskip(
    "services.opex_sandbox.app",
    reason="the OPEX sandbox HTTP app (services/opex_sandbox/app.py) does not exist yet",
)
sandbox_config = pytest.importorskip("services.opex_sandbox.config")

import uvicorn  # noqa: E402

from shared.opex import OpexClient  # noqa: E402
from tests.integration.shared.opex.support import (  # noqa: E402
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
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    # uvicorn installs no signal handlers outside the main thread
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=2)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(500):
        if server.started:
            break
        if not thread.is_alive():
            raise RuntimeError("the sandbox did not start")
        threading.Event().wait(0.01)
    else:
        raise RuntimeError("the sandbox did not start in 5 s")
    try:
        yield Sandbox(url=f"http://127.0.0.1:{port}", config=config)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture
async def opex(sandbox: Sandbox) -> AsyncIterator[OpexClient]:
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
