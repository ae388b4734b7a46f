"""OPEX going away: users caught mid-flow wait with backoff and finish once OPEX is back;
registrations keep being recorded meanwhile (no partition waits for OPEX); a user whose
attempts run out gets UserProvisioningFailed and its message in the DLQ, and is repaired
by the reconcile job, or by a re-sync, once OPEX answers again."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from services.user_sync.domain.provisioning import Decision, ErrorCode, Provisioning, Step
from services.user_sync.worker import Hooks
from shared.contracts import (
    ProvisioningFailureReason,
    UserProvisioned,
    UserProvisioningFailed,
    encode,
)
from shared.credentials import SecretBox
from shared.messaging import DLQ_HEADERS, KafkaSettings
from tests.integration.user_sync.conftest import StartService
from tests.integration.user_sync.support import (
    Sandbox,
    dead_letters,
    matches,
    new_email,
    outcomes,
    publish,
    registered,
)
from tests.support.kafka import wait_for

pytestmark = pytest.mark.integration


async def test_provision_when_opex_goes_down_midway_then_every_user_finishes_after_it_returns(
    start_service: StartService,
    kafka_settings: KafkaSettings,
    topic_prefix: str,
    sandbox: Sandbox,
    schema: str,
) -> None:
    tripped: list[str] = []

    async def outage_at_first_login(state: Provisioning, decision: Decision) -> None:
        if state.step is Step.LOGGED_IN and not tripped:
            tripped.append(state.user_id)
            sandbox.faults(outage=True)

    with capture_logs() as logs:
        service = await start_service(
            hooks=Hooks(after_commit=outage_at_first_login), concurrency=4
        )
        first = {f"out-{schema}-{i}": new_email("out") for i in range(8)}
        await publish(
            kafka_settings, topic_prefix, [(u, registered(u, e)) for u, e in first.items()]
        )

        async def all_waiting() -> bool:
            users = [await service.store.get(u) for u in first]
            return all(
                u is not None
                and u.attempts >= 2
                and u.last_error_code == ErrorCode.OPEX_UNAVAILABLE
                for u in users
            )

        await wait_for(all_waiting, timeout=20, interval=0.05)
        stuck = await service.store.steps_of(list(first))
        assert Step.PROVISIONED not in stuck.values()
        assert stuck[tripped[0]] is Step.LOGGED_IN

        # OPEX is still down: new registrations are recorded at once all the same
        later = {f"out-{schema}-late-{i}": new_email("late") for i in range(4)}
        await publish(
            kafka_settings, topic_prefix, [(u, registered(u, e)) for u, e in later.items()]
        )

        async def recorded() -> bool:
            return len(await service.store.steps_of(list(later))) == len(later)

        await wait_for(recorded, timeout=10, interval=0.05)
        assert sandbox.state.faults.settings.outage

        sandbox.clear_faults()
        everyone = {**first, **later}

        async def all_provisioned() -> bool:
            steps = await service.store.steps_of(list(everyone))
            return all(s is Step.PROVISIONED for s in steps.values())

        await wait_for(all_provisioned, timeout=30)
        published = await outcomes(kafka_settings, topic_prefix, everyone, expect=len(everyone))

    assert sorted(str(e.user_id) for e in published) == sorted(everyone)
    assert all(isinstance(e.data, UserProvisioned) for e in published)
    for user_id, email in everyone.items():
        [account] = sandbox.users_named(email)
        assert len(sandbox.keys_of(account.uuid)) == 1, user_id
    retries = [line for line in logs if line["event"] == "step_retry_later"]
    assert retries
    assert {line["code"] for line in retries} <= {
        ErrorCode.OPEX_UNAVAILABLE,
        ErrorCode.OPEX_AMBIGUOUS,
    }
    secrets = sandbox.seen.snapshot()
    for user_id in everyone:
        state = await service.store.load(user_id)
        assert state is not None
        assert state.password is not None
        assert state.api_key is not None
        secrets |= {state.password.get_secret_value(), state.api_key.secret.get_secret_value()}
    assert matches(repr(logs), secrets) == []
    assert matches(repr([encode(e) for e in published]), secrets) == []


async def test_provision_when_opex_stays_down_then_failed_and_dead_lettered_then_repaired(
    start_service: StartService,
    kafka_settings: KafkaSettings,
    topic_prefix: str,
    sandbox: Sandbox,
    schema: str,
    box: SecretBox,
) -> None:
    sandbox.faults(outage=True)
    service = await start_service(max_attempts=3, auto_retries=1)
    users = {f"down-{schema}-{i}": new_email("down") for i in range(3)}
    messages = {u: registered(u, e) for u, e in users.items()}
    await publish(kafka_settings, topic_prefix, list(messages.items()))

    async def all_failed() -> bool:
        steps = await service.store.steps_of(list(users))
        return len(steps) == len(users) and all(s is Step.FAILED for s in steps.values())

    await wait_for(all_failed, timeout=20)
    failures = await outcomes(kafka_settings, topic_prefix, users, expect=len(users))
    assert len(failures) == len(users)
    for envelope in failures:
        failure = envelope.data_as(UserProvisioningFailed)
        assert failure.reason_code is ProvisioningFailureReason.OPEX_UNAVAILABLE
        assert failure.attempts == 3
        assert "gave up after 3 attempts at NEW" in failure.reason
        assert envelope.causation_id == messages[str(envelope.user_id)].id
    letters = await dead_letters(
        kafka_settings, topic_prefix, [u.encode() for u in users], expect=len(users)
    )
    assert sorted(r.value for r in letters) == sorted(encode(m) for m in messages.values())
    for record in letters:
        headers = {k: v.decode() for k, v in record.headers}
        assert headers[DLQ_HEADERS.ERROR_CODE] == "OPEX_UNAVAILABLE"
        assert headers[DLQ_HEADERS.SERVICE] == "user_sync"
        assert headers[DLQ_HEADERS.ATTEMPTS] == "3"
        assert headers[DLQ_HEADERS.TOPIC] == topic_prefix + "users.events"
        assert int(headers[DLQ_HEADERS.OFFSET]) >= 0

    # OPEX is back: the reconcile job re-queues them (once each: auto_retries=1)
    sandbox.clear_faults()
    report = await service.reconciler.run_once()
    assert report.opex_up
    assert sorted(report.requeued) == sorted(users)

    async def all_provisioned() -> bool:
        steps = await service.store.steps_of(list(users))
        return all(s is Step.PROVISIONED for s in steps.values())

    await wait_for(all_provisioned, timeout=20)
    published = await outcomes(kafka_settings, topic_prefix, users, expect=2 * len(users))
    assert (
        sorted(e.type for e in published)
        == ["UserProvisioned"] * 3 + ["UserProvisioningFailed"] * 3
    )
    assert (await service.reconciler.run_once()).requeued == []
