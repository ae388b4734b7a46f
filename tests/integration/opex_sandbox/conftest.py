"""Each test gets a fresh sandbox app (market maker off, short delays) behind
`httpx.ASGITransport`, its lifespan (the background task) running."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest

from services.opex_sandbox.app import create_app
from tests.integration.opex_sandbox.support import Api, config

MakeApi = Callable[..., AbstractAsyncContextManager[Api]]


@asynccontextmanager
async def _api(**changes: Any) -> AsyncIterator[Api]:
    app = create_app(config(**changes))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as http:
            yield Api(http)


@pytest.fixture
def make_api() -> MakeApi:
    """`async with make_api(listing_delay_ms=..., ...) as api:` a sandbox configured so."""
    return _api


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    async with _api() as handle:
        yield handle
