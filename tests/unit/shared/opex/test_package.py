"""The public surface of shared.opex and its settings."""

from __future__ import annotations

import ast
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

import shared.opex as opex
from shared.opex import OpexSettings

PACKAGE = Path(opex.__file__).parent
ALLOWED = {"httpx", "pydantic", "pydantic_settings", "structlog", "shared", "aiohttp", "yarl"}


def test_all_names_exist_and_are_unique() -> None:
    assert all(hasattr(opex, name) for name in opex.__all__)
    assert len(set(opex.__all__)) == len(opex.__all__)


def test_imports_no_service_and_only_known_libraries() -> None:
    imported: set[str] = set()
    for source in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                imported.add(node.module.split(".")[0])
    assert "services" not in imported
    assert imported - ALLOWED <= set(sys.stdlib_module_names)


def test_the_hierarchy_is_drawn_in_one_docstring() -> None:
    from shared.opex import _errors

    doc = _errors.__doc__ or ""
    for name in _errors.__all__:
        assert name in doc


def test_settings_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPEX_API_URL", "OPEX_MARKET_URL", "OPEX_TIMEOUT", "OPEX_SURFACE"):
        monkeypatch.delenv(name, raising=False)
    settings = OpexSettings()
    assert settings.api_url == "http://127.0.0.1:8082"
    assert settings.market_url == settings.api_url
    assert settings.matching_gateway_url == settings.api_url
    assert settings.timeout == 30
    assert settings.surface == "v3"
    assert settings.path_prefix == ""
    assert settings.rate_limit_retry_after == Decimal(60)


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPEX_API_URL", "http://core-main-api-1:8080/")
    monkeypatch.setenv("OPEX_MARKET_URL", "http://core-main-market-1:8080")
    monkeypatch.setenv("OPEX_TIMEOUT", "2.5")
    monkeypatch.setenv("OPEX_SURFACE", "opex")
    monkeypatch.setenv("OPEX_PATH_PREFIX", "/api")
    monkeypatch.setenv("OPEX_API_KEY", "k")
    monkeypatch.setenv("OPEX_API_SECRET", "s")
    settings = OpexSettings()
    assert settings.api_url == "http://core-main-api-1:8080"
    assert settings.market_url == "http://core-main-market-1:8080"
    assert settings.timeout == 2.5
    assert settings.surface == "opex"
    assert settings.path_prefix == "/api"
    assert settings.admin_credentials() == opex.ApiKey("k", SecretStr("s"))


@pytest.mark.parametrize(
    "bad",
    [
        {"api_url": "ftp://x"},
        {"api_url": "http://x/?a=1"},
        {"timeout": 0},
        {"surface": "v2"},
        {"path_prefix": "/opex"},
        {"api_key": "k", "api_secret": ""},
    ],
)
def test_settings_refuse_nonsense(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        OpexSettings(**bad)  # type: ignore[arg-type]
