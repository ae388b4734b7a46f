"""`RegistrationHandler` with an in-memory store: what it records, publishes, re-queues
and dead-letters for each kind of UserRegistered (and what it ignores)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, cast

from sqlalchemy.ext.asyncio import AsyncSession

from services.user_sync.domain.provisioning import Origin, Step
from services.user_sync.domain.registration import Existing, NewUser, Recorded, SourceMessage
from services.user_sync.handlers import RegistrationHandler
from shared.contracts import (
    Envelope,
    UserProvisioned,
    UserProvisioningFailed,
    UserRegistered,
    Wallet,
    new_message,
)
from shared.messaging import Delivery, Transaction

SESSION = cast(AsyncSession, object())
OPEX_ID = uuid.uuid4()


class Store:
    def __init__(self, answer: Recorded | None = None) -> None:
        self.answer = answer
        self.recorded: list[NewUser] = []
        self.resynced: list[str] = []
        self.letters: list[tuple[SourceMessage, str]] = []

    async def record(self, session: AsyncSession, users: Sequence[NewUser]) -> Recorded:
        self.recorded.extend(users)
        return self.answer or Recorded(new=[u.user_id for u in users])

    async def resync(
        self,
        user_ids: Sequence[str] | None = None,
        *,
        failed: bool = False,
        session: AsyncSession | None = None,
    ) -> list[str]:
        assert session is SESSION
        self.resynced.extend(user_ids or [])
        return list(user_ids or [])

    async def stage_dead_letter(
        self,
        session: AsyncSession,
        source: SourceMessage,
        *,
        code: str,
        error: str,
        attempts: int = 1,
    ) -> None:
        self.letters.append((source, code))


def delivery(value: bytes = b"raw", offset: int = 7) -> Delivery:
    return Delivery("p.users.events", 1, offset, b"u1", value, (("traceparent", b"00-a-b-01"),))


def registered(user_id: str = "u1", email: str = "u1@example.com") -> Any:
    return new_message(UserRegistered(email=email, first_name="U"), user_id=user_id)


async def test_handle_when_a_user_registers_then_it_is_recorded_with_its_source() -> None:
    store = Store()
    envelope = registered()
    tx = Transaction(session=SESSION, delivery=delivery())
    await RegistrationHandler(store).handle(envelope, tx)
    [user] = store.recorded
    assert (user.user_id, user.email, user.first_name) == ("u1", "u1@example.com", "U")
    assert user.origin.message_id == envelope.id
    assert user.source == SourceMessage(
        "p.users.events", 1, 7, b"u1", b"raw", {"traceparent": "00-a-b-01"}
    )
    assert tx._outgoing == []


async def test_handle_when_the_messages_are_our_own_outcomes_then_nothing_happens() -> None:
    store = Store()
    tx = Transaction(session=SESSION)
    own: list[Envelope[Any]] = [
        new_message(UserProvisioned(opex_user_id=OPEX_ID), user_id="u1"),
        new_message(
            UserProvisioningFailed(reason_code="OPEX_UNAVAILABLE", reason="r", attempts=1),
            user_id="u1",
        ),
    ]
    await RegistrationHandler(store).handle_batch(own, tx, {})
    assert store.recorded == []
    assert tx._outgoing == []


async def test_handle_when_users_are_known_then_provisioned_republished_and_failed_requeued() -> (
    None
):
    done, failed, busy = registered("done"), registered("failed"), registered("busy")
    wallets = (Wallet(asset="USDT", free=Decimal(0)),)

    def existing(envelope: Any, step: Step) -> tuple[NewUser, Existing]:
        user = NewUser(envelope.user_id, "x@example.com", origin=_origin(envelope))
        return user, Existing(envelope.user_id, step, True, OPEX_ID, wallets)

    store = Store(
        Recorded(
            duplicates=[
                existing(done, Step.PROVISIONED),
                existing(failed, Step.FAILED),
                existing(busy, Step.API_KEY),
            ]
        )
    )
    tx = Transaction(session=SESSION)
    await RegistrationHandler(store).handle_batch([done, failed, busy], tx, {})
    [(message, topic, *_)] = tx._outgoing
    assert topic is None
    assert message.user_id == "done"
    assert message.causation_id == done.id
    assert message.data_as(UserProvisioned) == UserProvisioned(
        opex_user_id=OPEX_ID, wallets=wallets
    )
    assert store.resynced == ["failed"]


async def test_handle_when_the_email_belongs_to_another_user_then_failed_and_dead_lettered() -> (
    None
):
    envelope = registered("thief", "victim@example.com")
    source = SourceMessage("p.users.events", 0, 3, b"thief", b"raw")
    user = NewUser("thief", "victim@example.com", origin=_origin(envelope), source=source)
    store = Store(Recorded(email_taken=[user]))
    tx = Transaction(session=SESSION)
    await RegistrationHandler(store).handle_batch([envelope], tx, {})
    [(message, *_)] = tx._outgoing
    failure = message.data_as(UserProvisioningFailed)
    assert failure.reason_code == "REGISTRATION_FAILED"
    assert "another platform user" in failure.reason
    assert message.causation_id == envelope.id
    assert store.letters == [(source, "EMAIL_TAKEN")]


def _origin(envelope: Any) -> Origin:
    return Origin(envelope.id, envelope.correlation_id)
