"""What recording a UserRegistered deals in: the user as recorded, the Kafka record it
came in (kept for the DLQ), and what was already known."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from uuid import UUID

from services.user_sync.domain.provisioning import Origin, Step
from shared.contracts import Wallet

__all__ = ["Existing", "NewUser", "Recorded", "SourceMessage"]


@dataclass(frozen=True, slots=True)
class SourceMessage:
    """The Kafka record a UserRegistered came in."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class NewUser:
    """A UserRegistered, as recorded."""

    user_id: str
    email: str
    origin: Origin
    first_name: str | None = None
    last_name: str | None = None
    source: SourceMessage | None = None


@dataclass(frozen=True, slots=True)
class Existing:
    """What was already known of a user named by a UserRegistered."""

    user_id: str
    step: Step
    same_email: bool
    opex_user_id: UUID | None
    wallets: tuple[Wallet, ...]


@dataclass(slots=True)
class Recorded:
    """The result of recording a batch of UserRegistered."""

    new: list[str] = field(default_factory=list)
    duplicates: list[tuple[NewUser, Existing]] = field(default_factory=list)
    email_taken: list[NewUser] = field(default_factory=list)
