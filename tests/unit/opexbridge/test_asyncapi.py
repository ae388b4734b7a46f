"""The committed AsyncAPI documents are what the code generates (``make docs``)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from opexbridge.asyncapi import (
    ASYNCAPI_DIR,
    DOCUMENTED,
    PINNED_ENVIRONMENT,
    DocumentedService,
    asyncapi_documents,
    pinned_environment,
)
from shared.messaging.topics import topic_specs

TOPICS = {spec.name for spec in topic_specs(prefix="")}


@pytest.fixture(scope="module")
def generated() -> tuple[dict[Path, str], list[str]]:
    return asyncapi_documents()


def test_committed_documents_match_the_code(generated: tuple[dict[Path, str], list[str]]) -> None:
    documents, _skipped = generated
    assert documents, "no service documented"
    stale = [
        path.name
        for path, text in documents.items()
        if not path.is_file() or path.read_text(encoding="utf-8") != text
    ]
    assert not stale, f"out of date: {stale}; run `make docs` and commit docs/asyncapi"


def test_every_committed_document_belongs_to_a_documented_service(
    generated: tuple[dict[Path, str], list[str]],
) -> None:
    documents, _skipped = generated
    committed = set(ASYNCAPI_DIR.glob("*.json"))
    assert committed == set(documents), "a document of a service that no longer has a broker"


def test_every_service_with_an_app_is_documented(
    generated: tuple[dict[Path, str], list[str]],
) -> None:
    documents, skipped = generated
    repo = ASYNCAPI_DIR.parent.parent
    for service in DOCUMENTED:
        has_app = (repo / "services" / service.name / "app.py").is_file()
        assert (ASYNCAPI_DIR / service.filename in documents) == has_app, service.name
        assert (service.name in skipped) == (not has_app)


def _payload_refs(document: dict[str, Any]) -> list[str]:
    refs: list[str] = []
    for message in document["components"]["messages"].values():
        payload = message["payload"]
        refs.extend(item["$ref"] for item in payload.get("oneOf", [payload]))
    return refs


def test_documents_describe_the_topics_and_their_envelopes(
    generated: tuple[dict[Path, str], list[str]],
) -> None:
    documents, _skipped = generated
    for path, text in documents.items():
        document = json.loads(text)
        assert document["asyncapi"] == "3.0.0"
        assert (
            document["servers"]["development"]["host"]
            == PINNED_ENVIRONMENT["KAFKA_BOOTSTRAP_SERVERS"]
        )
        addresses = {channel["address"] for channel in document["channels"].values()}
        assert addresses <= TOPICS, f"{path.name}: unknown topics {addresses - TOPICS}"
        actions = {op["action"] for op in document["operations"].values()}
        assert "receive" in actions, path.name
        refs = _payload_refs(document)
        assert refs, path.name
        schemas = document["components"]["schemas"]
        for ref in refs:
            name = ref.removeprefix("#/components/schemas/")
            assert name.startswith("Envelope_"), f"{path.name}: payload {ref} is not an envelope"
            assert name in schemas
        assert "EmptyPayload" not in schemas


def test_publications_are_declared_for_the_outbox_topics(
    generated: tuple[dict[Path, str], list[str]],
) -> None:
    documents, _skipped = generated
    for service in DOCUMENTED:
        path = ASYNCAPI_DIR / service.filename
        if path not in documents:
            continue
        document = json.loads(documents[path])
        sent = {
            document["channels"][op["channel"]["$ref"].split("/")[-1].replace("%20", " ")][
                "address"
            ]
            for op in document["operations"].values()
            if op["action"] == "send"
        }
        assert sent == set(service.publishes), service.name


def test_a_service_without_an_app_is_skipped() -> None:
    documents, skipped = asyncapi_documents((DocumentedService("no_such_service", "none"),))
    assert documents == {}
    assert skipped == ["no_such_service"]


def test_the_environment_cannot_change_a_document(monkeypatch: pytest.MonkeyPatch) -> None:
    service = (DOCUMENTED[0],)
    before, _ = asyncapi_documents(service)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "elsewhere:9092")
    monkeypatch.setenv("OPEXBRIDGE_TOPIC_PREFIX", "t-42.")
    after, _ = asyncapi_documents(service)
    assert after == before
    assert os.environ["OPEXBRIDGE_TOPIC_PREFIX"] == "t-42.", "the environment is restored"


def test_pinned_environment_removes_what_was_not_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPEXBRIDGE_SECRETS_KEY", raising=False)
    with pinned_environment():
        assert os.environ["OPEXBRIDGE_SECRETS_KEY"]
    assert "OPEXBRIDGE_SECRETS_KEY" not in os.environ
