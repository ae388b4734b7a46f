"""From ``(type, version)`` to the model that reads it.

Each concrete message class registers itself with the default `registry` where it is
defined (``@registry.register``), so importing `shared.contracts` registers them all
and a consumer can parse any message of a topic.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TypeVar

from shared.contracts._base import Message
from shared.contracts._errors import UnknownMessageType
from shared.contracts._topics import Topic

__all__ = ["Registry", "models_for_topic", "registry"]

M = TypeVar("M", bound=type[Message])

_TYPE_NAME = re.compile(r"[A-Z][A-Za-z0-9]{0,63}", re.ASCII)


class Registry:
    """Message models by ``(TYPE, VERSION)``."""

    def __init__(self) -> None:
        self._models: dict[tuple[str, int], type[Message]] = {}
        self._by_topic: dict[Topic, tuple[type[Message], ...]] = {}

    def register(self, model: M) -> M:
        """Add ``model``; usable as a class decorator.

        `TypeError` if it is not a `Message` with ``TYPE``, ``VERSION`` and ``TOPIC``
        set; `ValueError` if its ``(TYPE, VERSION)`` is taken.
        """
        if not (isinstance(model, type) and issubclass(model, Message)):
            raise TypeError(f"{model!r} is not a Message class")
        type_ = getattr(model, "TYPE", None)
        version = getattr(model, "VERSION", None)
        topic = getattr(model, "TOPIC", None)
        if not (isinstance(type_, str) and _TYPE_NAME.fullmatch(type_)):
            raise TypeError(f"{model.__name__}.TYPE must be a CamelCase name, not {type_!r}")
        if not (type(version) is int and version >= 1):
            raise TypeError(f"{model.__name__}.VERSION must be an int >= 1, not {version!r}")
        if not isinstance(topic, Topic):
            raise TypeError(f"{model.__name__}.TOPIC must be a Topic, not {topic!r}")
        if not model.model_config.get("frozen"):
            raise TypeError(f"{model.__name__} must be frozen")
        key = (type_, version)
        if key in self._models:
            raise ValueError(
                f"{type_} version {version} is already registered "
                f"(by {self._models[key].__qualname__})"
            )
        self._models[key] = model
        self._by_topic[topic] = (*self._by_topic.get(topic, ()), model)
        return model

    def get(self, type_: str, version: int) -> type[Message]:
        """The model for ``type_`` and ``version``; `UnknownMessageType` if none."""
        model = self._models.get((type_, version))
        if model is None:
            raise UnknownMessageType(type_, version)
        return model

    def models_for_topic(self, topic: Topic | str) -> tuple[type[Message], ...]:
        """The models that travel on ``topic``, in registration order."""
        try:
            return self._by_topic.get(Topic(topic), ())
        except ValueError:
            return ()

    def __contains__(self, key: object) -> bool:
        return key in self._models

    def __iter__(self) -> Iterator[type[Message]]:
        return iter(tuple(self._models.values()))

    def __len__(self) -> int:
        return len(self._models)


registry = Registry()
"""The default registry, holding every message of `shared.contracts`."""


def models_for_topic(topic: Topic | str) -> tuple[type[Message], ...]:
    """The models of the default registry that travel on ``topic``."""
    return registry.models_for_topic(topic)
