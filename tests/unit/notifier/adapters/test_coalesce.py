from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from services.notifier.adapters.coalesce import Coalescer


async def test_load_when_many_callers_at_once_then_few_fetches_each_answered() -> None:
    batches: list[list[int]] = []

    async def fetch(keys: Sequence[int]) -> dict[int, str]:
        batches.append(list(keys))
        await asyncio.sleep(0.01)
        return {k: f"v{k}" for k in keys if k != 13}

    loader: Coalescer[int, str] = Coalescer(fetch, max_batch=40)
    results = await asyncio.gather(
        *(loader.load(k) for k in [*range(100), 7, 7]), return_exceptions=True
    )
    assert results[:13] == [f"v{k}" for k in range(13)]
    assert isinstance(results[13], LookupError)
    assert results[100:] == ["v7", "v7"]
    assert [len(b) for b in batches] == [40, 40, 20]


async def test_load_when_fetch_fails_then_its_callers_fail_and_next_batch_runs() -> None:
    calls = 0

    async def fetch(keys: Sequence[str]) -> dict[str, int]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("database down")
        return {k: len(k) for k in keys}

    loader: Coalescer[str, int] = Coalescer(fetch)
    with pytest.raises(ConnectionError):
        await loader.load("a")
    assert await loader.load("abc") == 3
