from __future__ import annotations

import json
import logging

import pytest
import structlog

from shared.observability import configure_logging, redact


def test_redact_when_field_names_look_secret_then_values_are_replaced() -> None:
    event = {
        "event": "login",
        "password": "hunter2",
        "api_key": "k",
        "X-API-SIGNATURE": "s",
        "user": "42",
    }
    out = redact(None, "info", dict(event))
    assert out["password"] == out["api_key"] == out["X-API-SIGNATURE"] == "[redacted]"
    assert out["user"] == "42"
    assert out["event"] == "login"


def test_configure_logging_when_json_then_lines_carry_correlation_id_and_no_secret(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("demo", json=True)
    try:
        with structlog.contextvars.bound_contextvars(correlation_id="c-1"):
            structlog.get_logger("t").info("placed", secret="s3cr3t-value", qty="1")
            logging.getLogger("stdlib").warning("from stdlib")
        lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line]
    finally:
        structlog.reset_defaults()
        structlog.contextvars.clear_contextvars()
    placed = next(line for line in lines if line["event"] == "placed")
    assert placed["correlation_id"] == "c-1"
    assert placed["service"] == "demo"
    assert placed["secret"] == "[redacted]"
    assert "s3cr3t-value" not in json.dumps(lines)
    assert any(line["event"] == "from stdlib" for line in lines)
