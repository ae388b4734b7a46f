"""The ops commands (``opexbridge users``) against a running user_sync: ``resync
--failed`` brings failed users home with a progress bar; ``verify --all --fix`` finds a
key OPEX stopped accepting and has it replaced; ``resync USER_ID`` re-publishes a
provisioned user's outcome."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from opexbridge.users import users_app
from services.user_sync.adapters.store import ProvisioningStore
from services.user_sync.domain.provisioning import Step
from shared.credentials import SecretBox, generate_key
from shared.messaging import KafkaSettings
from tests.integration.user_sync.conftest import StartService
from tests.integration.user_sync.support import (
    ADMIN_KEY,
    ADMIN_SECRET,
    Sandbox,
    new_email,
    outcomes,
    publish,
    registered,
)
from tests.support.kafka import wait_for

pytestmark = pytest.mark.integration


async def invoke(args: list[str], env: dict[str, str]) -> Result:
    """Run the command in a thread (it runs its own event loop)."""
    runner = CliRunner()
    return await asyncio.to_thread(runner.invoke, users_app, args, env=env)


def cli_env(database_url: str, schema: str, sandbox: Sandbox, secrets_key: str) -> dict[str, Any]:
    return {
        "DATABASE_URL": database_url,
        "USER_SYNC_SCHEMA": schema,
        "OPEXBRIDGE_SECRETS_KEY": secrets_key,
        "OPEX_API_URL": sandbox.url,
        "OPEX_API_KEY": ADMIN_KEY,
        "OPEX_API_SECRET": ADMIN_SECRET,
        "COLUMNS": "120",
    }


async def test_resync_when_users_failed_then_the_command_brings_them_to_provisioned(
    start_service: StartService,
    kafka_settings: KafkaSettings,
    topic_prefix: str,
    database_url: str,
    sandbox: Sandbox,
    schema: str,
    secrets_key: str,
) -> None:
    sandbox.faults(outage=True)
    service = await start_service(max_attempts=2, auto_retries=0)
    users = {f"ops-{schema}-{i}": new_email("ops") for i in range(3)}
    await publish(kafka_settings, topic_prefix, [(u, registered(u, e)) for u, e in users.items()])

    async def all_failed() -> bool:
        steps = await service.store.steps_of(list(users))
        return len(steps) == 3 and set(steps.values()) == {Step.FAILED}

    await wait_for(all_failed, timeout=20)
    sandbox.clear_faults()
    env = cli_env(database_url, schema, sandbox, secrets_key)

    status = await invoke(["status"], env)
    assert status.exit_code == 0, status.output
    assert "FAILED" in status.output

    result = await invoke(["resync", "--failed", "--timeout", "30"], env)
    assert result.exit_code == 0, result.output
    assert "3 re-queued: 3 provisioned, 0 failed, 0 in progress" in result.output
    assert set((await service.store.steps_of(list(users))).values()) == {Step.PROVISIONED}

    nothing = await invoke(["resync", "--failed"], env)
    assert nothing.exit_code == 0
    assert "nothing to re-sync" in nothing.output
    unknown = await invoke(["resync", "nobody-" + schema], env)
    assert unknown.exit_code == 1


async def test_verify_when_opex_refuses_a_key_then_fix_replaces_it_and_republishes(
    start_service: StartService,
    kafka_settings: KafkaSettings,
    topic_prefix: str,
    database_url: str,
    sandbox: Sandbox,
    schema: str,
    secrets_key: str,
) -> None:
    service = await start_service()
    users = {f"ver-{schema}-{i}": new_email("ver") for i in range(3)}
    await publish(kafka_settings, topic_prefix, [(u, registered(u, e)) for u, e in users.items()])

    async def all_provisioned() -> bool:
        steps = await service.store.steps_of(list(users))
        return len(steps) == 3 and set(steps.values()) == {Step.PROVISIONED}

    await wait_for(all_provisioned, timeout=20)
    env = cli_env(database_url, schema, sandbox, secrets_key)
    healthy = await invoke(["verify", "--all"], env)
    assert healthy.exit_code == 0, healthy.output

    victim = sorted(users)[0]
    before = await service.store.load(victim)
    assert before is not None
    assert before.api_key is not None
    sandbox.state.users.api_keys[before.api_key.key].enabled = False  # revoked on OPEX

    broken = await invoke(["verify", "--all"], env)
    assert broken.exit_code == 2
    assert victim in broken.output

    fixed = await invoke(["verify", "--all", "--fix"], env)
    assert fixed.exit_code == 0, fixed.output
    service.worker.notify()
    await wait_for(all_provisioned, timeout=20)
    after = await service.store.load(victim)
    assert after is not None
    assert after.api_key is not None
    assert after.api_key.key != before.api_key.key
    assert after.abandoned_key_ids == (before.api_key.key,)
    again = await invoke(["verify", "--all"], env)
    assert again.exit_code == 0, again.output

    # a provisioned user re-synced on request: its key checked, its outcome published again
    other = sorted(users)[1]
    result = await invoke(["resync", other, "--timeout", "20"], env)
    assert result.exit_code == 0, result.output
    published = await outcomes(kafka_settings, topic_prefix, users, expect=5)
    counts = {u: sum(1 for e in published if e.user_id == u) for u in users}
    assert counts == {victim: 2, other: 2, sorted(users)[2]: 1}


async def test_reconcile_when_opex_refuses_a_key_then_the_job_replaces_it(
    start_service: StartService,
    kafka_settings: KafkaSettings,
    topic_prefix: str,
    sandbox: Sandbox,
    schema: str,
    secrets_key: str,
) -> None:
    service = await start_service(verify_every_s=0.001, verify_batch=10)
    user_id = f"rec-{schema}"
    await publish(kafka_settings, topic_prefix, [(user_id, registered(user_id, new_email("rec")))])

    async def provisioned() -> bool:
        return (await service.store.steps_of([user_id])).get(user_id) is Step.PROVISIONED

    await wait_for(provisioned, timeout=20)
    before = await service.store.load(user_id)
    assert before is not None
    assert before.api_key is not None
    assert (await service.reconciler.run_once()).verified == 1
    sandbox.state.users.api_keys[before.api_key.key].enabled = False

    report = await service.reconciler.run_once()
    assert report.rekeyed == [user_id]
    await wait_for(provisioned, timeout=20)
    after = await service.store.load(user_id)
    assert after is not None
    assert after.api_key is not None
    assert after.api_key.key != before.api_key.key
    assert (await service.reconciler.run_once()).verified == 1
    # a new key goes first: rotate-secrets re-encrypts every stored secret with it
    new_key = generate_key()
    rotating = ProvisioningStore(
        service.db, SecretBox([new_key, secrets_key]), owner="ops", service="ops"
    )
    assert await rotating.rotate_secrets() == 1
    assert await rotating.rotate_secrets() == 0
    only_new = ProvisioningStore(service.db, SecretBox([new_key]), owner="ops")
    rotated = await only_new.load(user_id)
    assert rotated is not None
    assert rotated.api_key == after.api_key
    assert rotated.password == after.password
