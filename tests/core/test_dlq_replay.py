"""``replay_file`` line by line: a batch of good lines takes the fast path, a batch with a bad line is read
line by line; either way each line ends up exactly where the per-line rules put it."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from core.audit import Actor, AuditEvent, HttpAuditSink
from core.dlq import DeadLetterQueue
from core.dlq_sweep import PatternTally, RetryPolicy, age_band, replay_file
from tests.servers import AuditBackend, serving


@pytest.fixture
def backend() -> Iterator[AuditBackend]:
    server = AuditBackend()
    with serving(server):
        yield server


def _event(n: int) -> bytes:
    """A line as another writer may write it: keys this program does not know, at the top and in ``actor``."""
    event = AuditEvent.new(
        action="update", actor=Actor(id=f"u{n}", team=f"t{n}"), resource_type="T", tenant=f"acme-{n}", n=n
    )
    return event.to_json_line().encode()


@pytest.mark.parametrize("batch_size", [1, 3, 500])
def test_every_line_is_replayed_kept_corrupt_or_counted_blank_with_its_offset(
    tmp_path: Path, backend: AuditBackend, batch_size: int
) -> None:
    bad = {3: b"not json", 7: b"[1]", 8: b'{"event_id": "x"}', 12: b'{"a": 1}, {"b": 2}'}
    lines = [bad.get(n, b"" if n in (5, 10) else b"   " if n == 11 else _event(n)) for n in range(16)]
    dlq = DeadLetterQueue(tmp_path)
    dlq.append_raw(lines, "fallback")
    offsets = [sum(len(line) + 1 for line in lines[:n]) for n in range(len(lines))]
    sink = HttpAuditSink(backend.url)
    tally = PatternTally()
    with dlq.claimer() as claimer:
        (claimed,) = claimer.claim()
        outcome = replay_file(claimer, claimed, sink, batch_size=batch_size, retry=RetryPolicy(1), tally=tally)
    sink.close()

    events = [n for n in range(16) if n not in bad and n not in (5, 10, 11)]
    assert outcome.finished
    counts = outcome.counts
    assert (counts.lines, counts.replayed, counts.corrupt, counts.blank) == (16, len(events), 4, 3)
    stored = {event["n"]: event for event in backend.events.values()}
    assert sorted(stored) == events
    for n in events:  # unknown keys arrive exactly as written
        assert stored[n] == json.loads(lines[n])
        assert stored[n]["tenant"] == f"acme-{n}" and stored[n]["actor"]["team"] == f"t{n}"
    corrupt = [json.loads(line) for line in dlq.path("corrupt").read_bytes().splitlines()]
    assert {c["offset"]: c["raw"] for c in corrupt} == {offsets[n]: bad[n].decode() for n in bad}
    assert all(c["source"] == "audit_dlq_fallback.jsonl" for c in corrupt)
    assert sum(tally.counts.values()) == len(events)
    assert not list(tmp_path.glob("audit_dlq_fallback*"))


def test_a_torn_last_line_that_is_a_whole_event_is_replayed(tmp_path: Path, backend: AuditBackend) -> None:
    dlq = DeadLetterQueue(tmp_path)
    dlq.append_raw([_event(0)], "fallback")
    with dlq.path().open("ab") as handle:
        handle.write(_event(1))  # no newline: its writer stopped right after the closing brace
    sink = HttpAuditSink(backend.url)
    with dlq.claimer() as claimer:
        (claimed,) = claimer.claim()
        outcome = replay_file(claimer, claimed, sink, retry=RetryPolicy(1))
    sink.close()
    assert outcome.finished and outcome.counts.replayed == 2 and outcome.counts.corrupt == 0


def test_the_pattern_tally_puts_each_event_in_the_age_band_of_its_age() -> None:
    now = datetime(2026, 12, 1, 12, tzinfo=UTC)
    ages = [-5, 0, 1, 3599, 3600, 3601, 86399, 86400, 7 * 86400, 30 * 86400 - 1, 30 * 86400, 40 * 86400]
    plus_two = timezone(timedelta(hours=2))  # a writer that stamps local time: the age is the same
    events = [
        AuditEvent.new(action="update", actor=Actor(id="u"), enqueued_at=(now - timedelta(seconds=age)).astimezone(tz))
        for age in ages
        for tz in (UTC, plus_two)
    ]
    tally = PatternTally(now=now)
    tally.add_many(events)
    bands: Counter[str] = Counter()
    for key, count in tally.counts.items():
        bands[key[4]] += count
    assert bands == Counter(age_band(age) for age in ages for _ in range(2))


@pytest.mark.parametrize("batch_size", [2, 500])
def test_a_json_sink_gets_the_lines_as_written_once_per_event_and_only_rejected_ones_come_back(
    tmp_path: Path, backend: AuditBackend, batch_size: int
) -> None:
    lines = [_event(n) for n in range(6)]
    again = json.loads(lines[2])
    again["n"] = 99  # the same event_id later in the file: the last line wins, delivered once
    lines.append(json.dumps(again).encode())
    rejected_id = json.loads(lines[4])["event_id"]
    backend.reject = {rejected_id: "schema says no"}
    dlq = DeadLetterQueue(tmp_path)
    dlq.append_raw(lines, "fallback")
    tally = PatternTally()
    sink = HttpAuditSink(backend.url)
    with dlq.claimer() as claimer:
        (claimed,) = claimer.claim()
        outcome = replay_file(claimer, claimed, sink, batch_size=batch_size, retry=RetryPolicy(1), tally=tally)
    sink.close()

    counts = outcome.counts
    in_one_batch = batch_size == 500  # else the repeat comes in a later batch: delivered again, stored once
    assert outcome.finished and counts.requeued == 1
    assert (counts.replayed, counts.duplicates) == ((5, 1) if in_one_batch else (6, 0))
    assert sum(tally.counts.values()) == len(lines)
    stored_n = sorted(event["n"] for event in backend.events.values())  # the backend keeps what it stored first
    assert stored_n == ([0, 1, 3, 5, 99] if in_one_batch else [0, 1, 2, 3, 5])
    for event in backend.events.values():  # exactly as written, unknown keys included
        assert event in [json.loads(line) for line in lines]
    (requeued,) = [json.loads(line) for line in dlq.path("fallback").read_bytes().splitlines()]
    assert requeued["event_id"] == rejected_id and requeued["attempts"] == 1 and requeued["tenant"] == "acme-4"
    assert requeued["last_error"]["type"] == "SinkRejected" and "schema says no" in requeued["last_error"]["message"]
