"""The (type, version) -> model registry (shared/contracts/_registry.py)."""

from __future__ import annotations

from typing import ClassVar

import pytest

from shared.contracts import (
    Command,
    Event,
    MarketEvent,
    Message,
    PlaceOrder,
    Registry,
    Topic,
    UnknownMessageType,
    models_for_topic,
    registry,
)

# ARCHITECTURE.md, Topics: the messages of each topic.
TOPIC_TABLE: dict[Topic, set[str]] = {
    Topic.ORDERS_COMMANDS: {"PlaceOrder", "CancelOrder", "ClosePosition"},
    Topic.ORDERS_APPROVED: {"OrderApproved", "CancelApproved"},
    Topic.ORDERS_EVENTS: {
        "OrderRejected",
        "OrderSubmitted",
        "OrderAccepted",
        "OrderFilled",
        "OrderCanceled",
        "OrderExpired",
        "OrderFailed",
        "CancelRejected",
    },
    Topic.POSITIONS_EVENTS: {"PositionUpdated"},
    Topic.ACCOUNTS_EVENTS: {"BalancesUpdated", "TradingStateChanged"},
    Topic.USERS_EVENTS: {"UserRegistered", "UserProvisioned", "UserProvisioningFailed"},
    Topic.MARKET_INSTRUMENTS: {"InstrumentUpdated"},
    Topic.MARKET_TICKERS: {"TickerUpdated"},
}


def all_subclasses(cls: type[Message]) -> set[type[Message]]:
    found: set[type[Message]] = set()
    for sub in cls.__subclasses__():
        found |= {sub} | all_subclasses(sub)
    return found


def test_every_concrete_message_class_is_registered() -> None:
    concrete = {
        cls
        for cls in all_subclasses(Message)
        if "TYPE" in cls.__dict__ and cls.__module__.startswith("shared.contracts.")
    }

    assert concrete
    assert concrete == set(registry)


def test_registry_when_read_by_topic_then_matches_architecture_table() -> None:
    for topic, names in TOPIC_TABLE.items():
        assert {model.TYPE for model in models_for_topic(topic)} == names
    assert sum(len(names) for names in TOPIC_TABLE.values()) == len(registry)


def test_every_model_is_frozen_ignores_unknown_fields_and_names_its_class() -> None:
    for model in registry:
        assert model.model_config.get("frozen") is True
        assert model.model_config.get("extra") == "ignore"
        assert model.__name__ == model.TYPE
        assert model.VERSION == 1
        assert (model.TYPE, model.VERSION) in registry
        assert issubclass(model, Command) == (model.TOPIC is Topic.ORDERS_COMMANDS)
        assert issubclass(model, Event) != issubclass(model, Command)
        assert issubclass(model, MarketEvent) == (not model.TOPIC.keyed_by_user)


def test_get_when_registered_then_model() -> None:
    assert registry.get("PlaceOrder", 1) is PlaceOrder


@pytest.mark.parametrize(("type_", "version"), [("PlaceOrder", 2), ("Nope", 1), ("", 1)])
def test_get_when_not_registered_then_unknown_message_type(type_: str, version: int) -> None:
    with pytest.raises(UnknownMessageType) as caught:
        registry.get(type_, version)
    assert caught.value.type == type_
    assert caught.value.version == version


def test_models_for_topic_when_unknown_topic_then_empty() -> None:
    assert models_for_topic("nope") == ()
    assert models_for_topic("orders.commands") == models_for_topic(Topic.ORDERS_COMMANDS)


class Ping(Event):
    TYPE: ClassVar[str] = "Ping"
    VERSION: ClassVar[int] = 1
    TOPIC: ClassVar[Topic] = Topic.USERS_EVENTS


class PingV2(Event):
    TYPE: ClassVar[str] = "Ping"
    VERSION: ClassVar[int] = 2
    TOPIC: ClassVar[Topic] = Topic.USERS_EVENTS


def test_register_when_new_version_then_both_versions_found() -> None:
    own = Registry()
    own.register(Ping)
    own.register(PingV2)

    assert own.get("Ping", 1) is Ping
    assert own.get("Ping", 2) is PingV2
    assert own.models_for_topic(Topic.USERS_EVENTS) == (Ping, PingV2)
    assert len(own) == 2


def test_register_when_duplicate_type_and_version_then_value_error() -> None:
    own = Registry()
    own.register(Ping)

    class Impostor(Event):
        TYPE: ClassVar[str] = "Ping"
        VERSION: ClassVar[int] = 1
        TOPIC: ClassVar[Topic] = Topic.ORDERS_EVENTS

    with pytest.raises(ValueError, match="already registered"):
        own.register(Impostor)
    assert own.get("Ping", 1) is Ping


def test_register_when_default_registry_duplicate_then_value_error() -> None:
    class PlaceOrderAgain(Event):
        TYPE: ClassVar[str] = "PlaceOrder"
        VERSION: ClassVar[int] = 1
        TOPIC: ClassVar[Topic] = Topic.ORDERS_COMMANDS

    with pytest.raises(ValueError, match="already registered"):
        registry.register(PlaceOrderAgain)
    assert registry.get("PlaceOrder", 1) is PlaceOrder


def test_register_when_class_vars_missing_or_wrong_then_type_error() -> None:
    class NoType(Event):
        VERSION: ClassVar[int] = 1
        TOPIC: ClassVar[Topic] = Topic.USERS_EVENTS

    class BadVersion(Event):
        TYPE: ClassVar[str] = "BadVersion"
        VERSION: ClassVar[int] = 0
        TOPIC: ClassVar[Topic] = Topic.USERS_EVENTS

    class BadTopic(Event):
        TYPE: ClassVar[str] = "BadTopic"
        VERSION: ClassVar[int] = 1
        TOPIC: ClassVar[str] = "users.events"  # type: ignore[assignment]

    own = Registry()
    for model in (NoType, BadVersion, BadTopic, str):
        with pytest.raises(TypeError):
            own.register(model)  # type: ignore[type-var]
    assert len(own) == 0
