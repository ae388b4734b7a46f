"""Kafka plumbing every service shares.

- :func:`create_broker` — a FastStream ``KafkaBroker`` with ``acks=all`` and the
  idempotent producer, configured from :class:`KafkaSettings`.
- :mod:`topics <shared.messaging.topics>` — every topic declared once, and
  :func:`apply_topics` to create what is missing and report drift.
- :class:`Consumer` — decode, dead-letter what cannot be decoded, and run a handler
  exactly once per message id inside one database transaction (inbox), staging the
  messages it publishes in the outbox of that same transaction.
- :class:`OutboxRelay` — publishes committed outbox rows, in order, and deletes them.
- :class:`DeadLetters` — writes a message's original bytes to ``<topic>.dlq`` with
  headers saying why.
"""

from shared.messaging._broker import KafkaSettings, create_broker, start_broker
from shared.messaging._consumer import (
    BatchHandler,
    Consumer,
    Delivery,
    Handler,
    Outcome,
    PermanentError,
    Transaction,
    record_lag,
)
from shared.messaging._dlq import DLQ_HEADERS, DeadLetters, dlq_topic
from shared.messaging._outbox import PROGRESS_TOPIC, OutboxRelay, stage
from shared.messaging._tables import create_messaging_tables, inbox_table, outbox_table
from shared.messaging.topics import TopicSpec, apply_topics, topic_specs

__all__ = [
    "DLQ_HEADERS",
    "PROGRESS_TOPIC",
    "BatchHandler",
    "Consumer",
    "DeadLetters",
    "Delivery",
    "Handler",
    "KafkaSettings",
    "OutboxRelay",
    "Outcome",
    "PermanentError",
    "TopicSpec",
    "Transaction",
    "apply_topics",
    "create_broker",
    "create_messaging_tables",
    "dlq_topic",
    "inbox_table",
    "outbox_table",
    "record_lag",
    "stage",
    "start_broker",
    "topic_specs",
]
