"""`Worker.drive` with an in-memory store and OPEX: it commits every step before the next
call, stops at a wait or an end, publishes the outcome with the commit, runs the hooks
around each commit, and lets go of a user another process took over."""

from __future__ import annotations

import asyncio

from services.user_sync.domain.provisioning import (
    Decision,
    Outcome,
    Provisioning,
    RetryPolicy,
    Step,
)
from services.user_sync.handlers import Provisioner
from services.user_sync.worker import Hooks, Worker
from shared.contracts import ProvisioningFailureReason, UserProvisioned, UserProvisioningFailed
from tests.unit.user_sync.fakes import FakeOpex, FakeStore, down, new_user

POLICY = RetryPolicy(max_attempts=2, base_delay_s=0.01, max_delay_s=0.02)


def worker(store: FakeStore, opex: FakeOpex, hooks: Hooks | None = None) -> Worker:
    published: list[int] = []
    return Worker(
        store,
        Provisioner(opex),
        POLICY,
        on_published=lambda: published.append(1),
        hooks=hooks,
    )


async def test_drive_when_opex_answers_then_each_step_is_committed_and_the_outcome_published() -> (
    None
):
    store, opex = FakeStore(), FakeOpex()
    user = new_user()
    final = await worker(store, opex).drive(user)
    assert final is not None
    assert final.step is Step.PROVISIONED
    assert store.steps == [
        Step.REGISTERED,
        Step.VERIFIED,
        Step.CONFIRMED,
        Step.LOGGED_IN,
        Step.API_KEY,
        Step.PROVISIONED,
    ]
    assert [len(s.messages) for s in store.saved] == [0, 0, 0, 0, 0, 1]
    [message] = store.saved[-1].messages
    assert message.user_id == user.user_id
    assert message.correlation_id == user.origin.correlation_id
    assert message.causation_id == user.origin.message_id
    assert message.data_as(UserProvisioned).opex_user_id == final.opex_user_id
    assert final.revision == 6


async def test_drive_when_opex_is_down_then_one_attempt_is_committed_and_the_drive_stops() -> None:
    store, opex = FakeStore(), FakeOpex()
    opex.fail("register", down())
    final = await worker(store, opex).drive(new_user())
    assert final is not None
    assert store.outcomes == [Outcome.WAIT]
    assert final.step is Step.NEW
    assert final.attempts == 1
    assert store.saved[0].decision.delay_s > 0


async def test_drive_when_attempts_run_out_then_failure_is_published_with_the_commit() -> None:
    store, opex = FakeStore(), FakeOpex()
    opex.fail("register", down(), times=2)
    w = worker(store, opex)
    first = await w.drive(new_user())
    assert first is not None
    final = await w.drive(first)
    assert final is not None
    assert final.step is Step.FAILED
    [message] = store.saved[-1].messages
    failure = message.data_as(UserProvisioningFailed)
    assert failure.reason_code is ProvisioningFailureReason.OPEX_UNAVAILABLE
    assert failure.attempts == 2


async def test_drive_when_another_process_took_the_user_then_stop_without_going_on() -> None:
    store, opex = FakeStore(lose_lease_at=Step.CONFIRMED), FakeOpex()
    assert await worker(store, opex).drive(new_user()) is None
    assert store.steps == [Step.REGISTERED, Step.VERIFIED]
    assert "login" not in opex.calls


async def test_drive_when_hooks_are_set_then_they_run_around_each_commit() -> None:
    seen: list[tuple[str, Step]] = []

    async def before(state: Provisioning, decision: Decision) -> None:
        seen.append(("before", decision.state.step))

    async def after(state: Provisioning, decision: Decision) -> None:
        seen.append(("after", state.step))

    store = FakeStore()
    await worker(store, FakeOpex(), Hooks(before, after)).drive(new_user())
    assert seen[:4] == [
        ("before", Step.REGISTERED),
        ("after", Step.REGISTERED),
        ("before", Step.VERIFIED),
        ("after", Step.VERIFIED),
    ]
    assert len(seen) == 12


async def test_run_when_started_then_it_releases_its_leases_and_stops_cleanly() -> None:
    store = FakeStore()
    w = worker(store, FakeOpex())
    w.start()
    w.notify()
    await asyncio.sleep(0.05)
    await w.stop()
    assert store.released == 2  # at start, and at stop
    assert w.in_flight == 0
