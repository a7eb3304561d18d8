"""Replaying the DLQ into the audit sink, as plain functions (the Prefect flow composes them).

One claimed file at a time, streamed in batches (memory does not grow with the file). Per batch: deliver
the events (retried with backoff while the sink is unreachable), then append the lines that did not parse to
``corrupt``, the events the sink rejected back to ``fallback`` with ``attempts + 1`` and the error (or to
``poison`` once ``max_attempts`` is reached), then checkpoint. A crash between two checkpoints replays that
batch again, which the sink's idempotency on ``event_id`` absorbs. When the sink stays unreachable the file
is left claimed at its checkpoint and the next sweep adopts it: nothing is lost, no event is charged an
attempt for an outage.

Also here: the read-only inspection of a dry run, the redrive of poison (or corrupt) lines back to
``fallback`` once their cause is fixed (as SQS redrive does), and the error-pattern table of the guide's
quarterly review.
"""

from __future__ import annotations

import bisect
import contextlib
import gc
import json
import operator
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any

from core.audit import AuditEvent, AuditSink, JsonLineSink, LastError
from core.dlq import ClaimedFile, Claimer, DeadLetterQueue, LineBatch, RawLine, corrupt_record, parse_line
from core.errors import AuditSinkUnavailable
from core.optimistic import retry_call

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "FileOutcome",
    "PatternTally",
    "RetryPolicy",
    "SweepCounts",
    "deliver_with_retry",
    "inspect_dlq",
    "redrive",
    "replay_file",
]

#: columns of the error-pattern table
PATTERN_COLUMNS = ["error_type", "action", "resource_type", "actor_kind", "age_band"]
_AGE_BANDS = ((3600, "< 1h"), (86400, "1h-1d"), (7 * 86400, "1d-7d"), (30 * 86400, "7d-30d"))


@dataclass
class SweepCounts:
    """What happened to the lines of a sweep (or a dry run's inspection)."""

    files: int = 0
    lines: int = 0
    replayed: int = 0
    requeued: int = 0
    poisoned: int = 0
    corrupt: int = 0
    blank: int = 0
    duplicates: int = 0

    def add(self, other: SweepCounts) -> None:
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter while the sink is unreachable."""

    attempts: int = 4
    base_delay_seconds: float = 1.0
    max_delay_seconds: float = 30.0

    def delay(self, retry: int) -> float:
        base = min(self.max_delay_seconds, self.base_delay_seconds * 2**retry)
        return base * random.uniform(0.8, 1.2)


def deliver_with_retry(
    sink: AuditSink,
    events: Sequence[AuditEvent],
    retry: RetryPolicy,
    *,
    sleep: Callable[[float], None] = time.sleep,
    on_retry: Callable[[int, AuditSinkUnavailable], None] | None = None,
) -> dict[str, str]:
    """``sink.deliver(events)``, retried on ``AuditSinkUnavailable`` (the last one is raised)."""
    return _with_retry(lambda: sink.deliver(events), retry, sleep, on_retry)


def _with_retry(
    deliver: Callable[[], dict[str, str]],
    retry: RetryPolicy,
    sleep: Callable[[float], None],
    on_retry: Callable[[int, AuditSinkUnavailable], None] | None = None,
) -> dict[str, str]:
    def retrying(attempt: int, exc: Exception) -> None:
        if on_retry is not None and isinstance(exc, AuditSinkUnavailable):
            on_retry(attempt, exc)

    return retry_call(
        deliver,
        retry_on=(AuditSinkUnavailable,),
        attempts=retry.attempts,
        delay=retry.delay,
        on_retry=retrying,
        sleep=sleep,
    )


def age_band(age_seconds: float) -> str:
    for limit, name in _AGE_BANDS:
        if age_seconds < limit:
            return name
    return "> 30d"


_OLDEST_BAND = "> 30d"
_NO_ERROR = "(none recorded)"
_BAND_LIMITS = tuple((timedelta(seconds=limit), name) for limit, name in _AGE_BANDS)
#: band names by ``bisect_left`` position in the cut-offs (oldest first)
_BAND_NAMES = (_OLDEST_BAND, *(name for _, name in reversed(_BAND_LIMITS)))
_ID_OF_ROW = operator.itemgetter(0)
_PATTERN_OF_ROW = operator.itemgetter(slice(1, None))


@dataclass
class PatternTally:
    """Counts events by (error type, action, resource type, actor kind, age band); small whatever the DLQ."""

    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    counts: Counter[tuple[str, str, str, str, str]] = field(default_factory=Counter)
    _cutoffs_by_tz: dict[tzinfo | None, list[datetime]] = field(default_factory=dict, init=False, repr=False)

    def add(self, event: AuditEvent) -> None:
        self.add_many((event,))

    def add_many(self, events: Iterable[AuditEvent]) -> None:
        """Tally a batch in one comprehension: the sweep tallies every event it reads (bench/bench_dlq.py).

        The age band is found by bisecting the bands' cut-off times (an event is in band "< 1h" when it
        entered the DLQ after ``now - 1h``), not by computing each event's age. The cut-offs carry the
        batch's own ``tzinfo`` object: two datetimes with the same one compare field by field, while any
        other pair calls ``utcoffset()`` on both (that made the tally a fifth of the sweep's time).
        """
        if not isinstance(events, list | tuple):
            events = list(events)
        if not events:
            return
        first = events[0]
        cutoffs = self._cutoffs((first.enqueued_at or first.occurred_at).tzinfo)
        names = _BAND_NAMES
        self.counts.update(
            [
                (
                    _NO_ERROR if (error := event.last_error) is None else error.type,
                    event.action,
                    event.resource_type or "(none)",
                    event.actor.kind,
                    names[bisect.bisect_left(cutoffs, event.enqueued_at or event.occurred_at)],
                )
                for event in events
            ]
        )

    def add_json_lines(self, lines: Sequence[bytes], validate: Callable[[bytes], AuditEvent]) -> list[str]:
        """Validate and tally each line, keeping no event: each is dropped as soon as it is counted, so the
        next one is built in the memory it freed, still in the CPU's cache (a batch of parsed events is
        megabytes; the sweep into a :class:`JsonLineSink` needs only the lines). Returns the event ids.

        Raises ``ValueError`` at the first line that is not an event, having tallied none of the batch.
        """
        if not lines:
            return []
        first = validate(lines[0])
        cutoffs = self._cutoffs((first.enqueued_at or first.occurred_at).tzinfo)
        names, bisect_left = _BAND_NAMES, bisect.bisect_left
        rows = [
            (
                event.event_id,
                _NO_ERROR if (error := event.last_error) is None else error.type,
                event.action,
                event.resource_type or "(none)",
                event.actor.kind,
                names[bisect_left(cutoffs, event.enqueued_at or event.occurred_at)],
            )
            for event in map(validate, lines)
        ]
        self.counts.update(map(_PATTERN_OF_ROW, rows))
        return list(map(_ID_OF_ROW, rows))

    def _cutoffs(self, tz: tzinfo | None) -> list[datetime]:
        """The bands' cut-off times, oldest first, expressed in ``tz`` (the same instants whatever ``tz``)."""
        cutoffs = self._cutoffs_by_tz.get(tz)
        if cutoffs is None:
            cutoffs = [(self.now - limit).astimezone(tz) for limit, _ in reversed(_BAND_LIMITS)]
            if len(self._cutoffs_by_tz) < 64:  # foreign writers' offsets: a handful, never one per event
                self._cutoffs_by_tz[tz] = cutoffs
        return cutoffs

    def merge(self, other: PatternTally) -> None:
        self.counts.update(other.counts)

    def frame(self) -> pd.DataFrame:
        """The error-pattern table, most frequent first, with each pattern's share of the events."""
        import pandas as pd  # here, not at import: a sweep process starts faster without it

        rows = [(*key, count) for key, count in self.counts.items()]
        table = pd.DataFrame(rows, columns=[*PATTERN_COLUMNS, "events"])
        if table.empty:
            return table.assign(share=pd.Series(dtype=float))
        table = table.sort_values(["events", *PATTERN_COLUMNS], ascending=[False, *[True] * 5], ignore_index=True)
        return table.assign(share=(table["events"] / table["events"].sum()).round(4))

    def records(self, limit: int = 50) -> list[dict[str, Any]]:
        return [{str(k): v for k, v in row.items()} for row in self.frame().head(limit).to_dict("records")]


@dataclass
class FileOutcome:
    """One claimed file: its counts, whether it was finished (deleted) and, if not, why."""

    source: str
    counts: SweepCounts
    finished: bool
    sink_error: str | None = None


Progress = Callable[[ClaimedFile, int, SweepCounts], None]

#: least time between two checkpoints; a crash replays at most this much again (harmless: idempotent)
CHECKPOINT_INTERVAL_SECONDS = 0.5


@contextlib.contextmanager
def _fewer_gc_passes() -> Iterator[None]:
    """A batch keeps hundreds of parsed events alive, and the cyclic GC would rescan them every few hundred
    allocations (a third of the sweep's time in bench/bench_dlq.py). Events hold no cycles, so refcounting
    frees them anyway; the collector just runs less often while a file is replayed."""
    before = gc.get_threshold()
    gc.set_threshold(max(before[0], 200_000), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)


def replay_file(
    claimer: Claimer,
    claimed: ClaimedFile,
    sink: AuditSink,
    *,
    batch_size: int = 500,
    max_attempts: int = 5,
    retry: RetryPolicy | None = None,
    tally: PatternTally | None = None,
    progress: Progress | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> FileOutcome:
    """Replay one claimed file from its checkpoint; delete it when every line is accounted for."""
    with _fewer_gc_passes():
        return _replay_file(claimer, claimed, sink, batch_size, max_attempts, retry, tally, progress, sleep)


def _replay_file(
    claimer: Claimer,
    claimed: ClaimedFile,
    sink: AuditSink,
    batch_size: int,
    max_attempts: int,
    retry: RetryPolicy | None,
    tally: PatternTally | None,
    progress: Progress | None,
    sleep: Callable[[float], None],
) -> FileOutcome:
    retry = retry or RetryPolicy()
    dlq = claimer.dlq
    counts = SweepCounts(files=1)
    source = claimed.source_name
    checkpointed_at = 0.0
    validate: Callable[[bytes], AuditEvent] = AuditEvent.__pydantic_validator__.validate_json
    # a sink that takes JSON gets the lines as read (no batch of parsed events kept, none re-serialised)
    line_sink = sink if isinstance(sink, JsonLineSink) else None
    for batch in dlq.read_line_batches(claimed.path, claimed.start_offset, batch_size):
        lines = batch.lines
        events: list[AuditEvent] | None = None
        try:  # the hot path: a batch of good lines, validated in C-level passes (bench/bench_dlq.py)
            if line_sink is not None:
                ids = tally.add_json_lines(lines, validate) if tally is not None else _event_ids(lines, validate)
            else:
                events = list(map(validate, lines))
                if tally is not None:
                    tally.add_many(events)
                ids = list(map(_EVENT_ID, events))
            corrupt: list[bytes] = []
            blank = 0
        except ValueError:  # some line is not an event: classify this batch line by line
            events, lines, corrupt, blank = _classify(batch, source, claimer.run_id)
            if tally is not None:
                tally.add_many(events)
            ids = list(map(_EVENT_ID, events))
        if ids:
            try:
                if line_sink is not None:
                    delivered, rejected, rejected_lines = _deliver_lines(line_sink, ids, lines, retry, sleep)
                    failed = [validate(line) for line in rejected_lines]
                else:
                    failed = _unique(events or [], ids)
                    rejected = deliver_with_retry(sink, failed, retry, sleep=sleep)
                    delivered = len(failed)
            except AuditSinkUnavailable as exc:
                return FileOutcome(source, counts, finished=False, sink_error=str(exc))
            counts.duplicates += len(ids) - delivered
            _requeue(dlq, failed, rejected, max_attempts, counts)
            counts.replayed += delivered - len(rejected)
        if corrupt:
            dlq.append_raw(corrupt, "corrupt")
            counts.corrupt += len(corrupt)
        counts.lines += len(batch.lines)
        counts.blank += blank
        now = time.monotonic()
        if now - checkpointed_at >= CHECKPOINT_INTERVAL_SECONDS:
            claimer.checkpoint(claimed, batch.end)
            checkpointed_at = now
        if progress is not None:
            progress(claimed, batch.end, counts)
    claimer.finish(claimed)
    return FileOutcome(source, counts, finished=True)


def _event_ids(lines: Sequence[bytes], validate: Callable[[bytes], AuditEvent]) -> list[str]:
    """Validate each line and keep only its ``event_id`` (see :meth:`PatternTally.add_json_lines`)."""
    return [event.event_id for event in map(validate, lines)]


def _deliver_lines(
    sink: JsonLineSink,
    ids: list[str],
    lines: list[bytes],
    retry: RetryPolicy,
    sleep: Callable[[float], None],
) -> tuple[int, dict[str, str], list[bytes]]:
    """Deliver a batch's lines once per ``event_id`` (the last line wins, as in :func:`_unique`):
    (how many were delivered, the rejected ``{event_id: reason}``, the rejected lines)."""
    if len(set(ids)) != len(ids):
        by_id = dict(zip(ids, lines, strict=True))
        ids, lines = list(by_id), list(by_id.values())
    rejected = _with_retry(lambda: sink.deliver_json_lines(lines, ids), retry, sleep)
    return len(ids), rejected, [line for i, line in zip(ids, lines, strict=True) if i in rejected] if rejected else []


def _classify(batch: LineBatch, source: str, run_id: str) -> tuple[list[AuditEvent], list[bytes], list[bytes], int]:
    """(events, their lines, corrupt records, blank lines) of a batch, line by line, each unusable line kept
    with why."""
    events: list[AuditEvent] = []
    good: list[bytes] = []
    corrupt: list[bytes] = []
    blank = 0
    offset = batch.offset
    for data in batch.lines:
        start, offset = offset, offset + len(data) + batch.complete
        parsed = parse_line(data, complete=batch.complete)
        if parsed.event is not None:
            events.append(parsed.event)
            good.append(data)
        elif parsed.reason is not None:
            line = RawLine(data, start, offset, batch.complete)
            corrupt.append(corrupt_record(line, reason=parsed.reason, source=source, run_id=run_id))
        else:
            blank += 1
    return events, good, corrupt, blank


def _unique(events: list[AuditEvent], ids: list[str]) -> list[AuditEvent]:
    """The events of a batch (``ids`` their event ids), once per ``event_id`` (the last line wins); the
    batch itself when none repeats."""
    if len(set(ids)) == len(ids):
        return events
    return list({event.event_id: event for event in events}.values())


_EVENT_ID = operator.attrgetter("event_id")


def _requeue(
    dlq: DeadLetterQueue,
    events: Sequence[AuditEvent],
    rejected: dict[str, str],
    max_attempts: int,
    counts: SweepCounts,
) -> None:
    if not rejected:
        return
    now = datetime.now(UTC)
    again: list[AuditEvent] = []
    poison: list[AuditEvent] = []
    for event in events:
        reason = rejected.get(event.event_id)
        if reason is None:
            continue
        failed = event.model_copy(
            update={
                "attempts": event.attempts + 1,
                "last_error": LastError(type="SinkRejected", message=reason[:1000], at=now),
            }
        )
        (poison if failed.attempts >= max_attempts else again).append(failed)
    dlq.append(again, "fallback")
    dlq.append(poison, "poison")
    counts.requeued += len(again)
    counts.poisoned += len(poison)


def inspect_dlq(
    dlq: DeadLetterQueue, dlq_types: Iterable[str] = ("fallback",), tally: PatternTally | None = None
) -> SweepCounts:
    """What a sweep would find (dry run): counts of events, corrupt and blank lines; changes nothing."""
    counts = SweepCounts()
    seen_files: set[str] = set()
    for dlq_type in dlq_types:
        for path, _line, parsed in dlq.iter_parsed(dlq_type):
            seen_files.add(str(path))
            counts.lines += 1
            if parsed.event is not None:
                counts.replayed += 1
                if tally is not None:
                    tally.add(parsed.event)
            elif parsed.reason is not None:
                counts.corrupt += 1
            else:
                counts.blank += 1
    counts.files = len(seen_files)
    return counts


def redrive(claimer: Claimer, from_type: str = "poison", *, batch_size: int = 1000) -> SweepCounts:
    """Move every ``from_type`` line back to ``fallback`` for the next sweep (attempts reset to 0, the last
    error kept for the record); corrupt lines go back as their raw text, for lines fixed by hand."""
    if from_type not in ("poison", "corrupt"):
        raise ValueError(f"redrive moves 'poison' or 'corrupt' lines back to 'fallback', not {from_type!r}")
    dlq = claimer.dlq
    counts = SweepCounts()
    for claimed in claimer.recover(from_type) + claimer.claim(from_type):
        counts.files += 1
        batch: list[bytes] = []
        end = claimed.start_offset
        for line in dlq.read_lines(claimed.path, claimed.start_offset):
            counts.lines += 1
            end = line.end
            moved = _redriven(line.data, from_type)
            if moved is None:
                counts.blank += 1
            else:
                batch.append(moved)
            if len(batch) >= batch_size:
                dlq.append_raw(batch, "fallback")
                counts.requeued += len(batch)
                batch.clear()
                claimer.checkpoint(claimed, end)
        dlq.append_raw(batch, "fallback")
        counts.requeued += len(batch)
        claimer.finish(claimed)
    return counts


def _redriven(data: bytes, from_type: str) -> bytes | None:
    if not data.strip():
        return None
    if from_type == "corrupt":
        try:
            record = json.loads(data)
            raw = record.get("raw") if isinstance(record, dict) else None
        except ValueError:
            raw = None
        return raw.encode("utf-8").replace(b"\n", b" ") if isinstance(raw, str) else data
    parsed = parse_line(data)
    if parsed.event is None:
        return data  # not an event after all: the sweep will keep it as corrupt, with its reason
    return parsed.event.model_copy(update={"attempts": 0, "dlq_type": "fallback"}).to_json_line().encode("utf-8")


# ----------------------------------------------------------------------------------------------------
# the sweep's report


def stats_summary(dlq: DeadLetterQueue, now: datetime | None = None) -> dict[str, dict[str, Any]]:
    """``{dlq_type: {count, oldest_enqueued_at, oldest_age_seconds}}`` for reports and ``dlq stats --json``."""
    now = now or datetime.now(UTC)
    return {
        dlq_type: {
            "count": item.count,
            "oldest_enqueued_at": item.oldest_enqueued_at.isoformat() if item.oldest_enqueued_at else None,
            "oldest_age_seconds": round(item.oldest_age_seconds(now), 3),
        }
        for dlq_type, item in dlq.stats().items()
    }


def report_markdown(report: dict[str, Any]) -> str:
    """The sweep's summary as markdown: what happened, what is left, the error patterns."""
    counts = report["counts"]
    lines = [
        f"# DLQ sweep {'(dry run) ' if report.get('dry_run') else ''}— {report['status']}",
        "",
        f"- env: `{report['env']}`, DLQ folder: `{report['dlq_dir']}`",
        f"- files: {counts['files']}, lines: {counts['lines']}, duration: {report['duration_seconds']:.1f}s",
        f"- replayed: **{counts['replayed']}**, re-queued: {counts['requeued']}, poisoned: {counts['poisoned']}, "
        f"corrupt: {counts['corrupt']}, duplicates: {counts['duplicates']}, blank: {counts['blank']}",
        f"- metrics: {report.get('metrics_push', 'n/a')}",
    ]
    for message in report.get("problems", []):
        lines.append(f"- **problem:** {message}")
    lines += ["", "## Left in the DLQ", "", "| dlq_type | events | oldest age (s) |", "| --- | ---: | ---: |"]
    for dlq_type, item in report["stats_after"].items():
        lines.append(f"| {dlq_type} | {item['count']} | {item['oldest_age_seconds']:.0f} |")
    patterns = report.get("patterns") or []
    if patterns:
        lines += ["", "## Error patterns", "", "| " + " | ".join([*PATTERN_COLUMNS, "events"]) + " |"]
        lines.append("| " + " | ".join(["---"] * (len(PATTERN_COLUMNS) + 1)) + " |")
        for row in patterns[:20]:
            lines.append("| " + " | ".join(str(row[c]) for c in [*PATTERN_COLUMNS, "events"]) + " |")
    return "\n".join(lines)
