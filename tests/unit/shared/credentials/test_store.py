"""`OpexCredentials` never shows its secret; `opex_credentials_table` names the schema
the gateway reads."""

from __future__ import annotations

import uuid

from pydantic import SecretStr

from shared.credentials import DEFAULT_SCHEMA, OpexCredentials, opex_credentials_table
from shared.opex import ApiKey


def test_repr_when_credentials_are_printed_then_the_secret_is_not() -> None:
    creds = OpexCredentials(
        user_id="42",
        opex_user_id=uuid.uuid4(),
        api_key=ApiKey("key-0123456789", SecretStr("the-api-secret-value")),
        key_version="abc",
    )
    text = repr(creds) + str(creds) + f"{creds}"
    assert "the-api-secret-value" not in text
    assert "key-0123456789" not in text  # the key id is masked too
    assert "42" in text


def test_table_when_schema_given_then_qualified_else_search_path() -> None:
    assert opex_credentials_table().fullname == f"{DEFAULT_SCHEMA}.opex_credentials"
    assert opex_credentials_table("other").fullname == "other.opex_credentials"
    assert opex_credentials_table(None).fullname == "opex_credentials"
    assert {c.name for c in opex_credentials_table().columns} >= {
        "user_id",
        "opex_user_id",
        "api_key",
        "secret_enc",
        "password_enc",
        "key_version",
    }
