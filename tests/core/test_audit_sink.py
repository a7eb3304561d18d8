"""The metadata-database audit sink over real HTTP against the sandbox: idempotent on event_id."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.audit import Actor, AuditEvent, MetadataAuditSink, open_audit_sink
from core.errors import AuditSinkUnavailable
from core.metadata_db import AUDIT_EVENT
from core.settings import AuditSinkSettings, TerminusSettings
from core.terminus import TerminusGateway


def event(n: int, **extra: object) -> AuditEvent:
    return AuditEvent(
        event_id=f"00000000-0000-4000-8000-{n:012d}",
        occurred_at=datetime(2026, 11, 30, tzinfo=UTC) + timedelta(minutes=n),
        action="create",
        resource_type="ObjectType" if n % 2 else None,
        resource_id=f"ObjectType/{n}",
        actor=Actor(id=f"u-{n % 3}", username="alice", kind="user", team="core"),
        details={"n": n},
        **extra,
    )


def test_delivering_twice_stores_each_event_once_and_keeps_unknown_keys(
    settings: TerminusSettings, meta: TerminusGateway
) -> None:
    sink = open_audit_sink(AuditSinkSettings(), settings)
    assert isinstance(sink, MetadataAuditSink)
    try:
        events = [event(n, tenant="acme") for n in range(6)]
        assert sink.deliver(events) == {}
        assert sink.deliver([*events[:3], events[0]]) == {}, "already stored (and duplicates) are successes"
        stored = list(meta.iter_documents(doc_type=AUDIT_EVENT, branch="main"))
        assert sorted(d["event_id"] for d in stored) == sorted(e.event_id for e in events)

        page, cursor = sink.query(limit=4)
        assert [e.event_id for e in page] == [e.event_id for e in reversed(events)][:4]
        assert page[0].model_extra == {"tenant": "acme"} and page[0].actor.model_extra == {"team": "core"}
        rest, end = sink.query(limit=4, cursor=cursor)
        assert [e.event_id for e in rest] == [events[1].event_id, events[0].event_id] and end is None
        only, _ = sink.query(limit=10, actor="u-1", resource_type="ObjectType")
        assert {e.event_id for e in only} == {events[1].event_id}
    finally:
        sink.close()


def test_unreachable_metadata_database_is_sink_unavailable() -> None:
    sink = MetadataAuditSink(TerminusSettings(url="http://127.0.0.1:9", timeout_seconds=2))
    with pytest.raises(AuditSinkUnavailable, match="stay in the dead-letter queue"):
        sink.deliver([event(1)])
    sink.close()
