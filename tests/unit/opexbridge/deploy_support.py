"""What the deployment tests share: the repository's YAML, and the environment variable
names the suite's settings classes read."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any

import yaml
from pydantic import AliasChoices
from pydantic_settings import BaseSettings

from shared.credentials import SecretsSettings
from shared.db import DatabaseSettings
from shared.messaging import KafkaSettings
from shared.opex import OpexSettings

REPO = Path(__file__).resolve().parents[3]
SHARED_SETTINGS: tuple[type[BaseSettings], ...] = (
    KafkaSettings,
    DatabaseSettings,
    OpexSettings,
    SecretsSettings,
)


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def load_yaml_documents(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def env_names(settings: type[BaseSettings]) -> set[str]:
    """The variables ``settings`` reads (upper case; pydantic-settings ignores case)."""
    prefix = str(settings.model_config.get("env_prefix", ""))
    names: set[str] = set()
    for name, info in settings.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            names.update(choice for choice in alias.choices if isinstance(choice, str))
        elif isinstance(alias, str):
            names.add(alias)
        elif info.alias:
            names.add(info.alias)
        else:
            names.add(prefix + name)
    return {name.upper() for name in names}


def settings_classes(module_name: str) -> list[type[BaseSettings]]:
    """Every settings class defined in ``module_name``."""
    module = importlib.import_module(module_name)
    return [
        value
        for value in vars(module).values()
        if inspect.isclass(value)
        and issubclass(value, BaseSettings)
        and value.__module__ == module.__name__
    ]


def env_read_by(module: str) -> set[str]:
    """What a process started as ``python -m <module>`` reads: its own settings (from
    ``<package>.config``) and the shared ones."""
    package = ".".join(module.split(".")[:2]) if module.startswith("services.") else None
    names: set[str] = set()
    for settings in SHARED_SETTINGS:
        names |= env_names(settings)
    if package is not None:
        for settings in settings_classes(f"{package}.config"):
            names |= env_names(settings)
    return names


def module_exists(module: str) -> bool:
    """``python -m module`` would find it: a package with ``__main__.py`` or a module."""
    path = REPO / Path(*module.split("."))
    return (path / "__main__.py").is_file() or path.with_suffix(".py").is_file()
