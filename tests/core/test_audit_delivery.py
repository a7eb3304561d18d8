"""The emitter against the real metadata sink (sandbox) and a real DLQ folder: grouping, fallback, refusal."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from core.audit import Actor, AuditEvent, MetadataAuditSink
from core.audit_delivery import AuditEmitter, deliver_events
from core.dlq import DeadLetterQueue
from core.errors import AuditUndeliverable
from core.settings import TerminusSettings


def event(index: int) -> AuditEvent:
    return AuditEvent.new(
        action="create",
        resource_type="ObjectType",
        resource_id=f"ObjectType/e{index}",
        actor=Actor(id="u-1", username="alice", kind="user"),
        success=True,
        details={},
    )


def stored_ids(sink: MetadataAuditSink) -> set[str]:
    events, _ = sink.query(limit=10_000)
    return {e.event_id for e in events}


def run_emitter(emitter: AuditEmitter, events: list[AuditEvent]) -> list[Any]:
    async def main() -> list[Any]:
        await emitter.start()
        try:
            return await asyncio.gather(*(emitter.emit(e) for e in events), return_exceptions=True)
        finally:
            await emitter.stop()

    return asyncio.run(main())


def test_concurrent_events_are_grouped_and_each_is_stored(settings: TerminusSettings, tmp_path: Path) -> None:
    sink = MetadataAuditSink(settings)
    emitter = AuditEmitter(sink, DeadLetterQueue(tmp_path), window_seconds=0.005)
    events = [event(i) for i in range(60)]
    results = run_emitter(emitter, events)
    assert results == ["sink"] * 60
    assert emitter.batches < 10  # one sink insert for many requests
    assert {e.event_id for e in events} <= stored_ids(sink)
    assert not (tmp_path / "audit_dlq_fallback.jsonl").exists()


def test_unreachable_sink_sends_the_batch_to_the_dlq(tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sink = MetadataAuditSink(TerminusSettings(url=f"http://127.0.0.1:{port}", timeout_seconds=1))
    events = [event(i) for i in range(5)]
    results = run_emitter(AuditEmitter(sink, DeadLetterQueue(tmp_path)), events)
    assert results == ["dlq"] * 5
    lines = [json.loads(x) for x in (tmp_path / "audit_dlq_fallback.jsonl").read_text().splitlines()]
    assert [line["event_id"] for line in lines] == [e.event_id for e in events]
    assert all(line["last_error"]["type"] == "AuditSinkUnavailable" for line in lines)


def test_nowhere_to_store_raises_for_every_event(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    sink = MetadataAuditSink(TerminusSettings(url="http://127.0.0.1:9", timeout_seconds=1))
    results = run_emitter(AuditEmitter(sink, DeadLetterQueue(blocker / "dlq")), [event(1), event(2)])
    assert all(isinstance(r, AuditUndeliverable) for r in results)
    with pytest.raises(AuditUndeliverable):
        raise results[0]
    outcome = deliver_events(sink, DeadLetterQueue(blocker / "dlq"), [event(3)])
    assert not outcome.stored and len(outcome.failed) == 1
