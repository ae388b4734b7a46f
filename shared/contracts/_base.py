"""Base classes of the data models that travel in an envelope's ``data``.

```
Message                  frozen, unknown fields ignored; TYPE, VERSION, TOPIC
├── Command              imperative: PlaceOrder, CancelOrder, ClosePosition
└── Event                past tense: everything else
    └── MarketEvent      keyed by symbol, no user: InstrumentUpdated, TickerUpdated
```
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from shared.contracts._symbols import Symbol
from shared.contracts._topics import Topic

__all__ = ["Command", "Event", "MarketEvent", "Message"]


class Message(BaseModel):
    """The ``data`` of a message. Concrete classes set ``TYPE``, ``VERSION`` and
    ``TOPIC`` and are registered (see `Registry`)."""

    model_config = ConfigDict(frozen=True, extra="ignore", hide_input_in_errors=True)

    TYPE: ClassVar[str]
    """The envelope's ``type``: the class name, by convention."""
    VERSION: ClassVar[int]
    """The envelope's ``version`` of this shape; a breaking change is a new version."""
    TOPIC: ClassVar[Topic]
    """The only topic this message travels on."""

    def routing_key(self) -> str | None:
        """The partition key this message carries itself, or None when its envelope's
        ``user_id`` is the key. A message with a routing key has no user."""
        return None


class Command(Message):
    """Something a user asks for; it may be refused."""


class Event(Message):
    """Something that happened."""


class MarketEvent(Event):
    """Public market data: keyed by ``symbol``, and no user."""

    symbol: Symbol

    def routing_key(self) -> str | None:
        return self.symbol
