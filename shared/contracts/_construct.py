"""Models from values that are already valid, without validating them again.

`trusted` does what pydantic's ``model_construct`` does for the models of this package
(no aliases, no extra fields kept, no ``model_post_init``) at a fraction of its cost:
``model_construct`` walks every field's aliases in Python on each call, which on the hot
path of a service cost more than the message's own validation.
"""

from __future__ import annotations

import functools
from decimal import Decimal
from enum import Enum
from typing import Any, TypeVar

from pydantic import BaseModel

__all__ = ["trusted"]

ModelT = TypeVar("ModelT", bound=BaseModel)

_REQUIRED = object()
_set = object.__setattr__


@functools.cache
def _plan(cls: type[BaseModel]) -> tuple[tuple[str, Any], ...] | None:
    """Each field with its default (`_REQUIRED` if none), or None when the model needs
    ``model_construct``'s general path (aliases, a default factory, extra or post-init)."""
    if cls is BaseModel:
        return None
    if cls.model_config.get("extra") == "allow" or cls.__pydantic_post_init__:
        return None
    if cls.__pydantic_root_model__:
        return None
    plan: list[tuple[str, Any]] = []
    for name, field in cls.__pydantic_fields__.items():
        if field.alias not in (None, name) or field.validation_alias is not None:
            return None
        if field.default_factory is not None:
            return None
        if field.is_required():
            plan.append((name, _REQUIRED))
        elif _immutable(field.default):  # shared, where model_construct would copy it
            plan.append((name, field.default))
        else:
            return None
    return tuple(plan)


def _immutable(value: Any) -> bool:
    if value is None or isinstance(value, bool | int | float | str | bytes | Decimal | Enum):
        return True
    if isinstance(value, tuple | frozenset):
        return all(_immutable(item) for item in value)
    return False


def trusted(cls: type[ModelT], values: dict[str, Any]) -> ModelT:
    """``cls.model_construct(**values)``: an instance holding ``values`` as they are, the
    fields not in them at their defaults. Only for values that are valid already."""
    plan = _plan(cls)
    if plan is None:
        return cls.model_construct(**values)
    fields: dict[str, Any] = {}
    given: set[str] = set()
    for name, default in plan:
        if name in values:
            fields[name] = values[name]
            given.add(name)
        elif default is not _REQUIRED:
            fields[name] = default
    instance = cls.__new__(cls)
    _set(instance, "__dict__", fields)
    _set(instance, "__pydantic_fields_set__", given)
    _set(instance, "__pydantic_extra__", None)
    _set(instance, "__pydantic_private__", None)
    return instance
