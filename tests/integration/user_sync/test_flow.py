"""The happy path against the real broker, PostgreSQL and the sandbox: UserRegistered in,
one OPEX account with a working API key, UserProvisioned out, credentials readable
through shared.credentials."""

from __future__ import annotations

import pytest

from services.user_sync.domain.provisioning import Step
from shared.contracts import UserProvisioned
from shared.credentials import CredentialStore, SecretBox
from shared.db import Database
from shared.messaging import KafkaSettings
from shared.opex import OpexClient
from tests.integration.user_sync.conftest import StartService
from tests.integration.user_sync.support import (
    Sandbox,
    new_email,
    outcomes,
    publish,
    registered,
)
from tests.support.kafka import wait_for

pytestmark = pytest.mark.integration


async def test_provision_when_users_register_then_each_gets_one_account_and_a_working_key(
    start_service: StartService,
    kafka_settings: KafkaSettings,
    topic_prefix: str,
    sandbox: Sandbox,
    box: SecretBox,
    schema: str,
    database_url: str,
) -> None:
    service = await start_service()
    users = {f"flow-{schema}-{i}": new_email("flow") for i in range(5)}
    await publish(
        kafka_settings,
        topic_prefix,
        [(u, registered(u, e, first_name="Ada", last_name="L")) for u, e in users.items()],
    )

    async def all_provisioned() -> bool:
        steps = await service.store.steps_of(list(users))
        return len(steps) == len(users) and all(s is Step.PROVISIONED for s in steps.values())

    await wait_for(all_provisioned, timeout=30)
    published = await outcomes(kafka_settings, topic_prefix, users, expect=len(users))
    assert sorted(str(e.user_id) for e in published) == sorted(users)
    assert all(isinstance(e.data, UserProvisioned) for e in published)

    gateway_db = Database(database_url, "public", pool_size=2)  # another service's engine
    creds = CredentialStore(gateway_db, box, schema=schema, cache_s=60)
    assert await creds.get("nobody") is None
    async with OpexClient(sandbox.opex_settings()) as opex:
        for envelope in published:
            assert envelope.user_id is not None
            data = envelope.data_as(UserProvisioned)
            assert {w.asset for w in data.wallets} >= {"USDT", "BTC"}
            assert all(w.free == 0 for w in data.wallets)
            [account] = sandbox.users_named(users[envelope.user_id])
            assert account.uuid == str(data.opex_user_id)
            [key] = sandbox.keys_of(account.uuid)
            stored = await creds.get(envelope.user_id)
            assert stored is not None
            assert stored.opex_user_id == data.opex_user_id
            assert stored.api_key.key == key.key_id
            await opex.account(stored.api_key)  # a signed request with the stored key
            assert await creds.get(envelope.user_id) is stored  # cached
            creds.invalidate(envelope.user_id)
            assert await creds.get(envelope.user_id) == stored
    await gateway_db.dispose()
