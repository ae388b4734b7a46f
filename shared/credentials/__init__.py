"""OPEX credentials of platform users, encrypted at rest: the one small interface between
user_sync (which writes them) and the services that act on OPEX for a user (the order
gateway), so neither imports the other.

::

    from shared.credentials import CredentialStore, SecretBox

    store = CredentialStore(db, SecretBox.from_settings())   # OPEXBRIDGE_SECRETS_KEY
    creds = await store.get("42")       # OpexCredentials(opex_user_id, api_key) or None
    await opex.account(creds.api_key)   # a signed request

- `SecretBox` — Fernet encryption (``cryptography``) with the comma-separated keys of
  ``OPEXBRIDGE_SECRETS_KEY`` (the first encrypts, all decrypt: rotation); a public
  development key, with a loud warning, when the variable is unset.
- `CredentialStore` / `OpexCredentials` — read ``user_sync.opex_credentials``.
- `opex_credentials_table` — that table, for user_sync's writes and migrations.

Secrets are ``SecretStr`` from the moment they are decrypted: no repr, log line or
exception of this package shows one.
"""

from shared.credentials._box import (
    DEV_KEY_SEED,
    SecretBox,
    SecretsSettings,
    SecretUnreadable,
    dev_key,
    generate_key,
)
from shared.credentials._store import CredentialStore, OpexCredentials
from shared.credentials._table import DEFAULT_SCHEMA, opex_credentials_table

__all__ = [
    "DEFAULT_SCHEMA",
    "DEV_KEY_SEED",
    "CredentialStore",
    "OpexCredentials",
    "SecretBox",
    "SecretUnreadable",
    "SecretsSettings",
    "dev_key",
    "generate_key",
    "opex_credentials_table",
]
