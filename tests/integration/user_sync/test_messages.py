"""Duplicate and hostile messages on ``users.events``: the same UserRegistered twice (and
a second one for the same user) provisions once; what cannot be read goes to the DLQ;
an email already on OPEX, or already used by another platform user, fails at once with a
clear reason; forged outcomes are ignored; the service goes on for everyone else."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from services.user_sync.domain.provisioning import Step
from shared.contracts import (
    PlaceOrder,
    ProvisioningFailureReason,
    UserProvisioned,
    UserProvisioningFailed,
    encode,
    new_message,
)
from shared.messaging import DLQ_HEADERS, KafkaSettings
from tests.integration.user_sync.conftest import StartService
from tests.integration.user_sync.support import (
    Sandbox,
    dead_letters,
    new_email,
    outcomes,
    publish,
    registered,
)
from tests.support.kafka import wait_for

pytestmark = pytest.mark.integration


def raw_registered(key: str, email: object, **envelope: object) -> bytes:
    message = json.loads(encode(registered(key, "placeholder@example.com")))
    message["data"]["email"] = email
    message.update(envelope)
    return json.dumps(message).encode()


async def test_consume_when_messages_are_duplicate_or_hostile_then_each_user_provisioned_once(
    start_service: StartService,
    kafka_settings: KafkaSettings,
    topic_prefix: str,
    sandbox: Sandbox,
    schema: str,
) -> None:
    alice, bob, carol, dave, eve = (
        f"{n}-{schema}" for n in ("alice", "bob", "carol", "dave", "eve")
    )
    alice_email, bob_email = new_email("alice"), new_email("bob")
    foreign_email = new_email("foreign")
    sandbox.state.users.create_enabled(foreign_email, "someone-elses-password")
    first = registered(alice, alice_email, first_name="Robert'); DROP TABLE provisioning;--")
    hostile: list[tuple[str, bytes]] = [
        (eve, b"{not json"),
        (eve, b'{"type": "UserRegistered", "version": 1}'),
        (eve, b"x" * 100_000),
        (eve, raw_registered(eve, "not-an-email")),
        (eve, raw_registered(eve, "\u202eadmin@example.com")),
        (eve, raw_registered(eve, eve + "@example.com", user_id="has space")),
        (
            eve,
            encode(
                new_message(
                    PlaceOrder(
                        client_order_id="c1",
                        symbol="BTC_USDT",
                        side="buy",
                        type="limit",
                        quantity=Decimal(1),
                        price=Decimal(1),
                        time_in_force="GTC",
                    ),
                    user_id=eve,
                )
            ),
        ),
    ]
    forged = new_message(
        UserProvisioned(opex_user_id="00000000-0000-4000-8000-000000000000"), user_id=dave
    )
    await publish(
        kafka_settings,
        topic_prefix,
        [
            (alice, first),
            (alice, first),  # the same message again
            *hostile,
            (dave, forged),
            (bob, registered(bob, bob_email)),
            (alice, encode(first)),  # and once more
            (dave, registered(dave, foreign_email)),  # on OPEX already, not ours
        ],
    )
    service = await start_service()

    async def settled() -> bool:
        steps = await service.store.steps_of([alice, bob, dave])
        return steps == {alice: Step.PROVISIONED, bob: Step.PROVISIONED, dave: Step.FAILED}

    await wait_for(settled, timeout=30)
    # alice's email (in other letters) for another user; later: keys of other partitions
    # have no order with alice's, and the first of two users with one email keeps it
    await publish(kafka_settings, topic_prefix, [(carol, registered(carol, alice_email.upper()))])
    letters = await dead_letters(
        kafka_settings,
        topic_prefix,
        [u.encode() for u in (eve, carol, dave)],
        expect=len(hostile) + 2,
    )
    codes = sorted({k: v.decode() for k, v in r.headers}[DLQ_HEADERS.ERROR_CODE] for r in letters)
    assert codes == sorted(
        [
            "MALFORMED_JSON",
            "MISSING_FIELD",
            "MESSAGE_TOO_LARGE",
            "INVALID_EMAIL",
            "INVALID_EMAIL",
            "INVALID_IDENTIFIER",
            "WRONG_TOPIC",
            "EMAIL_TAKEN",
            "REGISTRATION_FAILED",
        ]
    )
    assert sorted(r.value for r in letters if r.key == eve.encode()) == sorted(
        v for _, v in hostile
    )

    # a second UserRegistered for a provisioned user: UserProvisioned again, nothing else
    again = registered(alice, alice_email)
    await publish(kafka_settings, topic_prefix, [(alice, again)])
    published = await outcomes(
        kafka_settings, topic_prefix, [alice, bob, carol, dave, eve], expect=5
    )
    by_user: dict[str, list[str]] = {}
    for envelope in published:
        by_user.setdefault(str(envelope.user_id), []).append(envelope.type)
    assert by_user == {
        alice: ["UserProvisioned", "UserProvisioned"],
        bob: ["UserProvisioned"],
        carol: ["UserProvisioningFailed"],
        dave: ["UserProvisioningFailed"],
    }
    alice_events = [e for e in published if e.user_id == alice]
    assert alice_events[1].causation_id == again.id
    assert len({e.data_as(UserProvisioned).opex_user_id for e in alice_events}) == 1
    failures = {
        str(e.user_id): e.data_as(UserProvisioningFailed)
        for e in published
        if e.type == "UserProvisioningFailed"
    }
    assert failures[carol].reason_code is ProvisioningFailureReason.REGISTRATION_FAILED
    assert "another platform user" in failures[carol].reason
    assert failures[dave].reason_code is ProvisioningFailureReason.REGISTRATION_FAILED
    assert "not taken over" in failures[dave].reason

    for email in (alice_email, bob_email):
        [account] = sandbox.users_named(email)
        assert len(sandbox.keys_of(account.uuid)) == 1
    [foreign] = sandbox.users_named(foreign_email)
    assert sandbox.keys_of(foreign.uuid) == []
    assert await service.store.steps_of([carol, eve, "has space"]) == {}
    assert (await service.store.get(alice)) is not None
