"""DLQ append throughput, with and without fsync, against a bare ``write()`` loop of the same lines.

Each append is one event, as the write path's fallback does for a lone failed delivery: open-or-reuse, flock,
check the tail, write the whole line, unlock (``DeadLetterQueue.append``). The bare loop writes the same
bytes to an ``O_APPEND`` descriptor with no lock and no checks: the floor.

Run: ``uv run python bench/bench_dlq_append.py`` (in a temporary folder on the machine's disk)
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

from core.audit import Actor, AuditEvent
from core.dlq import DeadLetterQueue

EVENTS = 5_000
EVENTS_FSYNC = 500
REPEATS = 3


def events(count: int) -> list[AuditEvent]:
    actor = Actor(id="u-123", username="alice", kind="user")
    return [
        AuditEvent.new(
            action="create",
            resource_type="ObjectType",
            resource_id=f"ObjectType/o{i}",
            actor=actor,
            success=True,
            details={"status": 201},
        )
        for i in range(count)
    ]


def dlq_rate(directory: Path, batch: list[AuditEvent], fsync: bool) -> float:
    queue = DeadLetterQueue(directory, fsync=fsync)
    start = time.perf_counter()
    for event in batch:
        queue.append([event])
    return len(batch) / (time.perf_counter() - start)


def bare_rate(path: Path, batch: list[AuditEvent], fsync: bool) -> float:
    lines = [(e.to_json_line() + "\n").encode() for e in batch]
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        start = time.perf_counter()
        for line in lines:
            os.write(fd, line)
            if fsync:
                os.fsync(fd)
        return len(lines) / (time.perf_counter() - start)
    finally:
        os.close(fd)


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-dlq-", dir=Path.home()) as tmp:
        root = Path(tmp)
        for fsync, count in ((False, EVENTS), (True, EVENTS_FSYNC)):
            batch = events(count)
            dlq, bare = [], []
            for run in range(REPEATS):
                directory = root / f"dlq-{fsync}-{run}"
                directory.mkdir()
                dlq.append(dlq_rate(directory, batch, fsync))
                bare.append(bare_rate(root / f"bare-{fsync}-{run}.jsonl", batch, fsync))
            rows.append((fsync, count, statistics.median(dlq), statistics.median(bare)))
    print(f"one event per append, median of {REPEATS} runs")
    print("| fsync | events | DeadLetterQueue.append (events/s) | bare write() loop (events/s) | DLQ / bare |")
    print("|---|---:|---:|---:|---:|")
    for fsync, count, dlq_median, bare_median in rows:
        print(
            f"| {'on' if fsync else 'off'} | {count:,} | {dlq_median:,.0f} | {bare_median:,.0f} "
            f"| {dlq_median / bare_median:.0%} |"
        )


if __name__ == "__main__":
    main()
