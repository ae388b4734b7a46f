"""The public surface of shared.contracts (shared/contracts/__init__.py)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import shared.contracts as contracts

PACKAGE = Path(contracts.__file__).parent
ALLOWED = {"pydantic", "pydantic_core", "shared"}


def test_all_names_exist_and_are_unique() -> None:
    assert all(hasattr(contracts, name) for name in contracts.__all__)
    assert len(set(contracts.__all__)) == len(contracts.__all__)


def test_every_message_class_is_public() -> None:
    for model in contracts.registry:
        assert getattr(contracts, model.__name__) is model
        assert model.__name__ in contracts.__all__


def test_package_imports_only_pydantic_and_the_standard_library() -> None:
    imported: set[str] = set()
    for source in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                imported.add(node.module.split(".")[0])
                if node.module.startswith("shared."):
                    assert node.module.startswith("shared.contracts"), (source.name, node.module)

    assert imported - ALLOWED <= set(sys.stdlib_module_names)
    assert "services" not in imported
