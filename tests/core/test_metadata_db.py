"""The metadata database is created on first use and its schema installed idempotently."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from core.metadata_db import (
    AUDIT_EVENT,
    METADATA_BRANCH,
    METADATA_SCHEMA,
    MIGRATIONS_BRANCH,
    ensure_metadata_db,
    lexical_id,
    metadata_gateway,
)
from core.settings import TerminusSettings
from core.terminus import TerminusGateway


@pytest.fixture
def settings(sandbox: Any) -> Iterator[TerminusSettings]:
    settings = TerminusSettings(url=sandbox.url, meta_database=f"meta_{uuid.uuid4().hex[:12]}")
    yield settings
    with TerminusGateway(settings) as gateway:
        gateway.delete_database(settings.meta_database, missing_ok=True)


BRANCHES = (METADATA_BRANCH, MIGRATIONS_BRANCH)


def _installed_classes(gateway: TerminusGateway, branch: str) -> dict[str, dict[str, Any]]:
    return {doc["@id"]: doc for doc in gateway.schema(branch=branch) if "@id" in doc}


def test_creates_the_database_and_installs_every_class(settings: TerminusSettings) -> None:
    with TerminusGateway(settings) as gateway:
        assert not gateway.database_exists(settings.meta_database)
        ensure_metadata_db(gateway, settings)
        assert gateway.database_exists(settings.meta_database)
    with metadata_gateway(settings) as meta:
        assert set(BRANCHES) <= set(meta.branches())
        for branch in BRANCHES:
            installed = _installed_classes(meta, branch)
            for expected in METADATA_SCHEMA:
                assert installed[expected["@id"]] == expected, branch


def test_second_run_changes_nothing(settings: TerminusSettings) -> None:
    with metadata_gateway(settings) as meta:
        ensure_metadata_db(meta, settings)
        heads = [meta.head_commit(branch=branch) for branch in BRANCHES]
        ensure_metadata_db(meta, settings)
        assert [meta.head_commit(branch=branch) for branch in BRANCHES] == heads


def test_upgrades_an_older_schema_and_keeps_its_documents(settings: TerminusSettings) -> None:
    audit_event = next(doc for doc in METADATA_SCHEMA if doc["@id"] == AUDIT_EVENT)
    older = {k: v for k, v in audit_event.items() if k not in ("extra", "details")}
    event = {
        "@type": AUDIT_EVENT,
        "event_id": "e-1",
        "occurred_at": "2024-05-01T10:00:00Z",
        "action": "create",
        "resource_type": "ObjectType",
        "resource_id": "ObjectType/x",
        "actor_id": "u-123",
        "actor_kind": "user",
        "success": True,
        "recorded_at": "2024-05-01T10:00:01Z",
    }
    with metadata_gateway(settings) as meta:
        meta.create_database(settings.meta_database)
        meta.insert_documents([older], author="test", message="old schema", graph_type="schema")
        meta.insert_documents([event], author="test", message="old event")

        ensure_metadata_db(meta, settings)

        for branch in BRANCHES:
            assert _installed_classes(meta, branch)[AUDIT_EVENT] == audit_event
        stored, _ = meta.get_document(lexical_id(AUDIT_EVENT, "e-1"), branch=METADATA_BRANCH)
        assert stored["actor_id"] == "u-123"
        assert "details" not in stored


def test_two_processes_installing_at_once_both_succeed(settings: TerminusSettings) -> None:
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def install() -> None:
        try:
            with TerminusGateway(settings) as gateway:
                barrier.wait()
                ensure_metadata_db(gateway, settings)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=install) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    with metadata_gateway(settings) as meta:
        for branch in BRANCHES:
            assert {doc["@id"] for doc in METADATA_SCHEMA} <= set(_installed_classes(meta, branch))


def test_audit_events_are_keyed_on_their_event_id(settings: TerminusSettings) -> None:
    event_id = str(uuid.uuid4())
    event = {
        "@type": AUDIT_EVENT,
        "event_id": event_id,
        "occurred_at": "2024-05-01T10:00:00Z",
        "action": "update",
        "resource_type": "ObjectType",
        "resource_id": "ObjectType/x",
        "actor_id": "svc-1",
        "actor_username": "svc_deployment",
        "actor_kind": "service",
        "success": False,
        "details": '{"reason": "test"}',
        "recorded_at": "2024-05-01T10:00:01Z",
    }
    with metadata_gateway(settings) as meta:
        ensure_metadata_db(meta, settings)
        ids, _ = meta.insert_documents([event], author="test", message="event", branch=METADATA_BRANCH)
        assert ids[0].endswith(lexical_id(AUDIT_EVENT, event_id))
        stored, _ = meta.get_document(lexical_id(AUDIT_EVENT, event_id), branch=METADATA_BRANCH)
    assert stored["details"] == '{"reason": "test"}'
    assert stored["success"] is False
