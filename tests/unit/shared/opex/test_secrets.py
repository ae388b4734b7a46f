"""Secrets, tokens and signatures never reach a repr, an exception or a log line."""

from __future__ import annotations

import json
import logging
import traceback
from decimal import Decimal

import httpx
import pytest
import structlog
from pydantic import SecretStr
from structlog.testing import capture_logs

from shared.observability import configure_logging
from shared.opex import (
    ApiKey,
    ApiKeySecret,
    Bearer,
    LegacyApiKey,
    OpexAuth,
    OpexError,
    OpexSettings,
    Registration,
    Token,
    redacted_headers,
)
from shared.opex.testing import MockOpex, opex_error

SECRET = "sup3r-s3cret-value"
TOKEN = "eyJhbGciOi.t0ken-value.sig"
KEY = "key-id-0123456789"


def every_text(value: object) -> str:
    return f"{value!r} {value!s}"


def test_credentials_never_show_their_secret() -> None:
    for creds in (
        ApiKey(KEY, SecretStr(SECRET)),
        LegacyApiKey(KEY, SecretStr(SECRET)),
        Bearer(SecretStr(TOKEN)),
    ):
        text = every_text(creds) + every_text(OpexAuth(creds))
        assert SECRET not in text
        assert TOKEN not in text
        assert KEY not in text  # the key id is shortened too


def test_models_and_settings_never_show_secrets() -> None:
    values: list[object] = [
        Token(access_token=SecretStr(TOKEN), refresh_token=SecretStr(TOKEN)),
        ApiKeySecret(apiKeyId=KEY, secret=SecretStr(SECRET)),
        Registration(otp=SecretStr(SECRET)),
        OpexSettings(api_secret=SecretStr(SECRET), client_secret=SecretStr(SECRET)),
    ]
    for value in values:
        assert SECRET not in every_text(value)
        assert TOKEN not in every_text(value)
    dumped = ApiKeySecret(apiKeyId=KEY, secret=SecretStr(SECRET)).model_dump_json()
    assert SECRET not in dumped


def test_redacted_headers() -> None:
    headers = httpx.Headers(
        {
            "X-API-KEY": KEY,
            "X-API-SECRET": SECRET,
            "X-API-SIGNATURE": "sig",
            "Authorization": f"Bearer {TOKEN}",
            "X-API-TIMESTAMP": "1",
        }
    )
    shown = redacted_headers(headers)
    assert shown["x-api-timestamp"] == "1"
    assert SECRET not in json.dumps(shown)
    assert TOKEN not in json.dumps(shown)
    assert KEY not in json.dumps(shown)
    assert "sig" not in shown.values()


@pytest.mark.parametrize(
    "answer",
    [
        {"response": opex_error(1025, "InvalidSignature")},
        {"response": httpx.Response(401)},
        {"raises": httpx.ReadTimeout},
        {"raises": httpx.ConnectError},
        {"status": 500, "content": b"oops"},
    ],
    ids=["1025", "401", "read-timeout", "connect", "500"],
)
@pytest.mark.parametrize(
    "creds",
    [
        ApiKey(KEY, SecretStr(SECRET)),
        LegacyApiKey(KEY, SecretStr(SECRET)),
        Bearer(SecretStr(TOKEN)),
    ],
    ids=["signed", "legacy", "bearer"],
)
async def test_failures_and_logs_carry_no_secret(
    answer: dict[str, object], creds: ApiKey | LegacyApiKey | Bearer
) -> None:
    mock = MockOpex()
    mock.on("POST", "/v3/order", **answer)  # type: ignore[arg-type]
    with capture_logs() as logs:
        async with mock.client() as opex:
            with pytest.raises(OpexError) as caught:
                await opex.place_order(
                    creds, "BTC_USDT", "BUY", "LIMIT", Decimal(1), Decimal(2), "GTC"
                )
    signature = mock.last.headers.get("X-API-SIGNATURE", "no-signature-sent")
    exc = caught.value
    texts = [
        every_text(exc),
        repr(exc.args),
        "".join(traceback.format_exception(exc)),
        json.dumps(logs, default=str),
    ]
    for text in texts:
        for secret in (SECRET, TOKEN, KEY, signature):
            assert secret not in text
    (line,) = logs
    assert line["event"] == "opex.request"
    assert set(line) >= {"method", "path", "status", "duration_ms", "outcome"}
    assert line["path"] == "/v3/order"  # no query string


async def test_the_rendered_log_lines_of_auth_calls_carry_no_password_or_token(
    capsys: pytest.CaptureFixture[str],
) -> None:
    mock = MockOpex()
    mock.on(
        "POST",
        "/opex/v1/oauth/protocol/openid-connect/token",
        json={"token": {"access_token": TOKEN, "refresh_token": TOKEN, "expires_in": 1}},
    )
    mock.on("POST", "/v1/api-key", json={"apiKeyId": KEY, "secret": SECRET})
    configure_logging("test", level="DEBUG", json=True)
    try:
        async with mock.client() as opex:
            token = await opex.login("user@x.io", SECRET)
            await opex.create_api_key(token.bearer(), "bot")
        output = capsys.readouterr().err
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers.clear()
    lines = [json.loads(line) for line in output.splitlines() if line.strip()]
    assert [line["path"] for line in lines if line["event"] == "opex.request"] == [
        "/opex/v1/oauth/protocol/openid-connect/token",
        "/v1/api-key",
    ]
    for secret in (SECRET, TOKEN, KEY, "user@x.io"):
        assert secret not in output
