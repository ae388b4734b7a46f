"""`GroupCommit`: requests that arrive together share one flush, each is answered only
after the flush that carried it returned, and a failed flush fails its batch alone."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from services.notifier.adapters.commands import GroupCommit


class Flushes:
    """A flush that waits until the test lets it finish, recording each batch."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.release = asyncio.Event()
        self.committed: list[int] = []
        self.fail_next: Exception | None = None

    async def __call__(self, batch: list[int]) -> Sequence[str | Exception]:
        self.batches.append(list(batch))
        await self.release.wait()
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            raise error
        self.committed.extend(batch)
        return [ValueError(f"refused {i}") if i < 0 else f"ok {i}" for i in batch]


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_submit_when_flush_not_finished_then_nobody_answered_until_it_commits() -> None:
    flushes = Flushes()
    batcher: GroupCommit[int, str] = GroupCommit(flushes)
    calls = [asyncio.create_task(batcher.submit(i)) for i in (1, 2, 3)]
    await settle()
    assert flushes.batches == [[1, 2, 3]]
    assert not any(call.done() for call in calls)
    flushes.release.set()
    assert await asyncio.gather(*calls) == ["ok 1", "ok 2", "ok 3"]
    assert flushes.committed == [1, 2, 3]


async def test_submit_when_requests_arrive_during_a_flush_then_they_share_the_next() -> None:
    flushes = Flushes()
    batcher: GroupCommit[int, str] = GroupCommit(flushes)
    first = asyncio.create_task(batcher.submit(1))
    await settle()
    later = [asyncio.create_task(batcher.submit(i)) for i in (2, 3, 4)]
    await settle()
    assert flushes.batches == [[1]]  # the next batch waits for the flush in progress
    assert len(batcher) == 3
    flushes.release.set()
    assert await first == "ok 1"
    assert await asyncio.gather(*later) == ["ok 2", "ok 3", "ok 4"]
    assert flushes.batches == [[1], [2, 3, 4]]


async def test_submit_when_two_flushes_allowed_then_a_late_request_does_not_wait() -> None:
    flushes = Flushes()
    batcher: GroupCommit[int, str] = GroupCommit(flushes, concurrency=2)
    first = asyncio.create_task(batcher.submit(1))
    await settle()
    second = asyncio.create_task(batcher.submit(2))
    await settle()
    third = [asyncio.create_task(batcher.submit(i)) for i in (3, 4)]
    await settle()
    assert flushes.batches == [[1], [2]]  # two in flight, no third
    assert len(batcher) == 2
    flushes.release.set()
    assert await asyncio.gather(first, second, *third) == ["ok 1", "ok 2", "ok 3", "ok 4"]
    assert sorted(map(tuple, flushes.batches)) == [(1,), (2,), (3, 4)]


async def test_submit_when_more_than_max_batch_then_split_in_order() -> None:
    flushes = Flushes()
    flushes.release.set()
    batcher: GroupCommit[int, str] = GroupCommit(flushes, max_batch=2)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(5)))
    assert results == [f"ok {i}" for i in range(5)]
    assert flushes.batches == [[0, 1], [2, 3], [4]]


async def test_submit_when_one_item_refused_then_only_its_caller_gets_the_error() -> None:
    flushes = Flushes()
    flushes.release.set()
    batcher: GroupCommit[int, str] = GroupCommit(flushes)
    outcomes = await asyncio.gather(
        batcher.submit(1), batcher.submit(-2), batcher.submit(3), return_exceptions=True
    )
    assert outcomes[0] == "ok 1"
    assert isinstance(outcomes[1], ValueError)
    assert outcomes[2] == "ok 3"


async def test_submit_when_flush_fails_then_its_batch_gets_the_error_and_next_goes_on() -> None:
    flushes = Flushes()
    flushes.fail_next = OSError("database down")
    batcher: GroupCommit[int, str] = GroupCommit(flushes)
    failed = [asyncio.create_task(batcher.submit(i)) for i in (1, 2)]
    await settle()
    later = asyncio.create_task(batcher.submit(3))
    await settle()
    flushes.release.set()
    outcomes = await asyncio.gather(*failed, return_exceptions=True)
    assert all(isinstance(o, OSError) for o in outcomes)
    assert await later == "ok 3"
    assert flushes.committed == [3]  # nothing of the failed batch


async def test_submit_when_flush_answers_the_wrong_count_then_the_batch_fails() -> None:
    async def short(batch: list[int]) -> Sequence[str | Exception]:
        return ["only one"]

    batcher: GroupCommit[int, str] = GroupCommit(short)
    outcomes = await asyncio.gather(batcher.submit(1), batcher.submit(2), return_exceptions=True)
    assert all(isinstance(o, RuntimeError) for o in outcomes)


async def test_submit_when_caller_cancelled_then_others_still_answered() -> None:
    flushes = Flushes()
    batcher: GroupCommit[int, str] = GroupCommit(flushes)
    gone = asyncio.create_task(batcher.submit(1))
    stays = asyncio.create_task(batcher.submit(2))
    await settle()
    gone.cancel()
    flushes.release.set()
    assert await stays == "ok 2"
    assert gone.cancelled()


async def test_aclose_when_a_batch_is_in_flight_then_waits_for_it() -> None:
    flushes = Flushes()
    batcher: GroupCommit[int, str] = GroupCommit(flushes)
    call = asyncio.create_task(batcher.submit(1))
    await settle()
    asyncio.get_running_loop().call_later(0.01, flushes.release.set)
    await batcher.aclose()
    assert call.done()
    assert await call == "ok 1"


def test_group_commit_when_max_batch_below_one_then_refused() -> None:
    async def flush(batch: list[int]) -> Sequence[str | Exception]:
        return []

    with pytest.raises(ValueError, match="at least 1"):
        GroupCommit(flush, max_batch=0)
    with pytest.raises(ValueError, match="at least 1"):
        GroupCommit(flush, concurrency=0)
