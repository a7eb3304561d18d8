"""The metadata-database audit sink over real HTTP against the sandbox: idempotent on event_id."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from core.audit import Actor, AuditEvent, BatchRefusal, MetadataAuditSink, open_audit_sink, split_refused_batch
from core.audit_async import AsyncMetadataAuditSink
from core.errors import AuditSinkUnavailable, TerminusError, TerminusUnreachable
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


def refused_by_terminusdb(n: int) -> AuditEvent:
    """An event whose document TerminusDB refuses (``success`` is no xsd:boolean): pydantic would not make it,
    another writer's line could."""
    return event(n).model_copy(update={"success": "maybe"})


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_refused_event_is_split_out_and_the_rest_is_stored(
    kind: str, settings: TerminusSettings, meta: TerminusGateway
) -> None:
    events = [event(n) for n in range(5)]
    events[3] = refused_by_terminusdb(3)
    before = {c.id for c in meta.log(branch="main")}
    if kind == "sync":
        sync_sink = MetadataAuditSink(settings)
        try:
            rejected = sync_sink.deliver(events)
        finally:
            sync_sink.close()
    else:

        async def deliver() -> dict[str, str]:
            async_sink = AsyncMetadataAuditSink(settings)
            try:
                return await async_sink.deliver(events)
            finally:
                await async_sink.aclose()

        rejected = asyncio.run(deliver())

    assert list(rejected) == [events[3].event_id] and "success" in rejected[events[3].event_id]
    stored = {d["event_id"] for d in meta.iter_documents(doc_type=AUDIT_EVENT, branch="main")}
    assert stored == {e.event_id for i, e in enumerate(events) if i != 3}
    # the same halving in both: [0 1 | 2 3 4] -> [0 1] stored; [2 | 3 4] -> [2] stored; [3 | 4] -> [4] stored
    commits = [c.message for c in reversed(meta.log(branch="main")) if c.id not in before]
    assert commits == ["Audit events (2)", "Audit events (1)", "Audit events (1)"]


def test_split_rule_halves_a_refused_batch_and_refuses_a_single_event() -> None:
    events = [event(n) for n in range(5)]
    refusal = TerminusError("TerminusDB refused the documents", status=400)
    assert split_refused_batch(events, refusal, database="meta") == BatchRefusal([events[:2], events[2:]], {})
    assert split_refused_batch(events[:1], refusal, database="meta") == BatchRefusal(
        [], {events[0].event_id: "TerminusDB refused the documents"}
    )
    not_about_the_documents = [TerminusError("no", status=s) for s in (401, 403, 404)]
    for failure in [*not_about_the_documents, TerminusUnreachable("http://127.0.0.1:9", reason="refused")]:
        with pytest.raises(AuditSinkUnavailable, match="'meta'"):
            split_refused_batch(events, failure, database="meta")
