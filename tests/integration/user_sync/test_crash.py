"""Crashes: ``python -m services.user_sync`` as a child process, SIGKILLed by its own test
hook right after it commits a step (one run per step, each resuming where the last one
died), or right before it records an API key OPEX has already created. Each ends with
exactly one OPEX account for the user and one API key that signs requests, one
UserProvisioned, and no secret in any log line of any run."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import pytest

from services.user_sync.adapters.store import ProvisioningStore
from services.user_sync.domain.provisioning import Step
from shared.contracts import UserProvisioned
from shared.credentials import SecretBox
from shared.db import Database
from shared.messaging import KafkaSettings
from shared.opex import OpexClient
from tests.integration.user_sync.support import (
    ADMIN_KEY,
    ADMIN_SECRET,
    Sandbox,
    everything_published,
    matches,
    new_email,
    outcomes,
    publish,
    registered,
)
from tests.support.kafka import wait_for

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[3]
CRASH_AFTER = [
    Step.REGISTERED,
    Step.VERIFIED,
    Step.CONFIRMED,
    Step.LOGGED_IN,
    Step.API_KEY,
    Step.PROVISIONED,
]


def service_env(
    *,
    schema: str,
    prefix: str,
    sandbox: Sandbox,
    kafka: KafkaSettings,
    database_url: str,
    secrets_key: str,
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {
        **env,
        # compiled modules outside the repository: each restart imports in a second
        "PYTHONPYCACHEPREFIX": str(Path(tempfile.gettempdir()) / "opexbridge-pycache"),
        "PYTHONPATH": str(REPO),
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "DATABASE_URL": database_url,
        "OPEXBRIDGE_TOPIC_PREFIX": prefix,
        "OPEXBRIDGE_SECRETS_KEY": secrets_key,
        "OPEX_API_URL": sandbox.url,
        "OPEX_API_KEY": ADMIN_KEY,
        "OPEX_API_SECRET": ADMIN_SECRET,
        "OPEX_TIMEOUT": "5",
        "USER_SYNC_SCHEMA": schema,
        "USER_SYNC_INSTANCE_ID": schema,
        "USER_SYNC_GROUP_ID": f"user_sync-{schema}",
        "USER_SYNC_PORT": "0",
        "USER_SYNC_MIGRATE": "false",
        "USER_SYNC_BACKOFF_BASE": "0.05",
        "USER_SYNC_BACKOFF_MAX": "0.3",
        "USER_SYNC_POLL_INTERVAL": "0.05",
        "USER_SYNC_TEST_CRASH_AFTER": "",
        "USER_SYNC_TEST_CRASH_BEFORE": "",
    }


async def run_until_killed(env: dict[str, str], log: Path, timeout: float = 30.0) -> int:
    """Run the service until its crash hook kills it; its exit code."""
    with log.open("ab") as sink:
        child = subprocess.Popen(
            [sys.executable, "-m", "services.user_sync"],
            env=env,
            cwd=REPO,
            stdout=sink,
            stderr=sink,
        )
        try:
            return await asyncio.to_thread(child.wait, timeout)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    sink = log.open("ab")
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "services.user_sync"],
            env=env,
            cwd=REPO,
            stdout=sink,
            stderr=sink,
        )
    finally:
        sink.close()


async def assert_one_account_with_one_working_key(
    sandbox: Sandbox, store: ProvisioningStore, user_id: str, email: str
) -> None:
    state = await store.load(user_id)
    assert state is not None
    assert state.step is Step.PROVISIONED
    [account] = sandbox.users_named(email)
    assert str(state.opex_user_id) == account.uuid
    assert state.api_key is not None
    usable = [k for k in sandbox.keys_of(account.uuid) if k.key_id not in state.abandoned_key_ids]
    assert [k.key_id for k in usable] == [state.api_key.key]
    async with OpexClient(sandbox.opex_settings()) as opex:
        account_view = await opex.account(state.api_key)  # signed with the stored secret
    assert "USDT" in {b.asset for b in account_view.balances}


def assert_no_secret_in(text: str, store_state_secrets: list[str], sandbox: Sandbox) -> None:
    secrets = [*store_state_secrets, *sandbox.seen.snapshot()]
    assert secrets
    assert matches(text, secrets) == []


async def test_provision_when_killed_after_each_step_then_one_account_and_one_working_key(
    kafka_settings: KafkaSettings,
    database_url: str,
    topic_prefix: str,
    schema: str,
    sandbox: Sandbox,
    secrets_key: str,
    box: SecretBox,
    tmp_path: Path,
) -> None:
    user_id, email = f"crash-{schema}", new_email("crash")
    await publish(kafka_settings, topic_prefix, [(user_id, registered(user_id, email))])
    env = service_env(
        schema=schema,
        prefix=topic_prefix,
        sandbox=sandbox,
        kafka=kafka_settings,
        database_url=database_url,
        secrets_key=secrets_key,
    )
    log = tmp_path / "user_sync.log"
    db = Database(database_url, schema, pool_size=2)
    store = ProvisioningStore(db, box, owner="test")
    try:
        for step in CRASH_AFTER:
            code = await run_until_killed({**env, "USER_SYNC_TEST_CRASH_AFTER": step}, log)
            assert code == -signal.SIGKILL, f"the run meant to die after {step} exited {code}"
            assert (await store.steps_of([user_id]))[user_id] is step
            assert len(sandbox.users_named(email)) == 1

        port = free_port()
        child = start({**env, "USER_SYNC_PORT": str(port)}, log)  # publishes the last commit
        try:
            published = await outcomes(kafka_settings, topic_prefix, [user_id], expect=1)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
                health = await http.get("/health")
                metrics = await http.get("/metrics")
            assert health.status_code == 200, health.text
            assert health.json()["checks"] == {"database": True, "kafka": True}
            assert "opexbridge_user_sync_in_flight" in metrics.text
        finally:
            child.send_signal(signal.SIGTERM)
            await asyncio.to_thread(child.wait, 20)
        assert child.returncode in (0, -signal.SIGTERM)  # uvicorn re-raises the signal
        assert [e.type for e in published] == ["UserProvisioned"]
        state = await store.load(user_id)
        assert state is not None
        assert published[0].data_as(UserProvisioned).opex_user_id == state.opex_user_id
        await assert_one_account_with_one_working_key(sandbox, store, user_id, email)
        assert state.abandoned_key_ids == ()
        assert state.password is not None
        assert state.api_key is not None
        logs = log.read_text("utf-8", "replace")
        assert '"user_provisioned"' in logs
        published_text = await everything_published(kafka_settings, topic_prefix)
        assert user_id in published_text
        for text in (logs, published_text, repr(await store.get(user_id))):
            assert_no_secret_in(
                text,
                [state.password.get_secret_value(), state.api_key.secret.get_secret_value()],
                sandbox,
            )
    finally:
        await db.dispose()


async def test_provision_when_killed_before_the_new_key_is_recorded_then_the_lost_key_is_abandoned(
    kafka_settings: KafkaSettings,
    database_url: str,
    topic_prefix: str,
    schema: str,
    sandbox: Sandbox,
    secrets_key: str,
    box: SecretBox,
    tmp_path: Path,
) -> None:
    user_id, email = f"lost-{schema}", new_email("lost")
    await publish(kafka_settings, topic_prefix, [(user_id, registered(user_id, email))])
    env = service_env(
        schema=schema,
        prefix=topic_prefix,
        sandbox=sandbox,
        kafka=kafka_settings,
        database_url=database_url,
        secrets_key=secrets_key,
    )
    log = tmp_path / "user_sync.log"
    db = Database(database_url, schema, pool_size=2)
    store = ProvisioningStore(db, box, owner="test")
    try:
        code = await run_until_killed({**env, "USER_SYNC_TEST_CRASH_BEFORE": Step.API_KEY}, log)
        assert code == -signal.SIGKILL
        before = await store.load(user_id)
        assert before is not None
        assert before.step is Step.LOGGED_IN
        [account] = sandbox.users_named(email)
        lost = [k.key_id for k in sandbox.keys_of(account.uuid)]
        assert lost == [before.planned_key_id]  # OPEX made it; its secret died with the run

        child = start(env, log)
        try:

            async def provisioned() -> bool:
                return (await store.steps_of([user_id]))[user_id] is Step.PROVISIONED

            await wait_for(provisioned, timeout=30)
            published = await outcomes(kafka_settings, topic_prefix, [user_id], expect=1)
        finally:
            child.send_signal(signal.SIGTERM)
            await asyncio.to_thread(child.wait, 20)
        assert [e.type for e in published] == ["UserProvisioned"]
        state = await store.load(user_id)
        assert state is not None
        assert state.abandoned_key_ids == tuple(lost)
        assert len(sandbox.keys_of(account.uuid)) == 2  # the lost one, unusable, and ours
        await assert_one_account_with_one_working_key(sandbox, store, user_id, email)
        assert state.password is not None
        assert state.api_key is not None
        assert_no_secret_in(
            log.read_text("utf-8", "replace"),
            [state.password.get_secret_value(), state.api_key.secret.get_secret_value()],
            sandbox,
        )
    finally:
        await db.dispose()
