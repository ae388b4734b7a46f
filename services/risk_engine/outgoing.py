"""Envelopes for what the engine publishes, made cheaply on the hot path.

`shared.contracts.caused_by` and `new_message` validate the whole envelope again, although
its data is a contract model already validated when it was made, its ids and time are
generated here and the rest is copied from a validated parent: that was a fifth of the
cost of a decision. `Envelopes.make` checks the envelope's own rules (type and version
are the data's; a user id, well formed, exactly when the data carries no routing key)
and builds it with ``model_construct``; anything that does not pass takes the validated
path, which raises the contract's error. Message ids are random (version 4) UUIDs as
`uuid.uuid4` makes them, from ``os.urandom`` read a block at a time rather than 16
bytes per id, and set the way ``UUID(bytes=..., version=4)`` sets them without its
argument checks. Envelopes (and the data `OrderApproved` the engine builds from
validated parts) are made with `shared.contracts.trusted`, ``model_construct`` without
its per-field alias lookups.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, SafeUUID

from shared.contracts import Envelope, Message, caused_by, new_message, trusted

__all__ = ["Envelopes"]

_USER_ID = re.compile(r"[\x21-\x7e]{1,64}")  # shared.contracts' UserId
_ID_BYTES = 16
# What UUID(bytes=..., version=4) does to the 128 random bits: RFC 4122 variant, version 4.
_CLEAR = ~((0xC000 << 48) | (0xF000 << 64))
_SET = (0x8000 << 48) | (4 << 76)
_set = object.__setattr__


class Envelopes:
    def __init__(self, *, block: int = 1024) -> None:
        self._block = block * _ID_BYTES
        self._pool = b""
        self._at = 0

    def new_id(self) -> UUID:
        """A random (version 4) UUID."""
        at = self._at
        if at >= len(self._pool):
            self._pool = os.urandom(self._block)
            at = 0
        self._at = at + _ID_BYTES
        uid = object.__new__(UUID)
        _set(uid, "int", int.from_bytes(self._pool[at : at + _ID_BYTES]) & _CLEAR | _SET)
        _set(uid, "is_safe", SafeUUID.unknown)
        return uid

    def make(
        self, parent: Envelope[Any] | None, message: Message, user_id: str | None
    ) -> Envelope[Any]:
        """The envelope of ``message`` for ``user_id``: caused by ``parent`` (its
        correlation id, causation = its id), or a new chain when ``parent`` is None.
        The same envelope as `caused_by(parent, message, user_id=user_id)` or
        `new_message(message, user_id=user_id)` would make."""
        message_id = self.new_id()
        has_user = message.routing_key() is None
        if has_user != (user_id is not None) or (
            user_id is not None and (type(user_id) is not str or not _USER_ID.fullmatch(user_id))
        ):
            if parent is None:  # raises the contract's InvalidMessage
                return new_message(message, user_id=user_id, message_id=message_id)
            return caused_by(parent, message, user_id=user_id, message_id=message_id)
        now = datetime.now(UTC)
        return trusted(
            Envelope,
            {
                "id": message_id,
                "type": message.TYPE,
                "version": message.VERSION,
                "occurred_at": now.replace(microsecond=now.microsecond // 1000 * 1000),
                "correlation_id": message_id if parent is None else parent.correlation_id,
                "causation_id": None if parent is None else parent.id,
                "user_id": user_id,
                "data": message,
            },
        )
