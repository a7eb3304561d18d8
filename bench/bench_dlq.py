"""DLQ sweep benchmarks: (a) the sweep's machinery vs a bare line-parsing loop, (b) the sweep into the
sandbox's audit sink vs bulk-inserting the same events straight into it, (c) peak memory vs DLQ size.

Run: ``uv run python bench/bench_dlq.py --events 1000000 --sink-events 1000000`` (prints a markdown table;
``--sink-events 0`` skips (b)). (a) is measured twice: ``sweep`` into an accept-all sink that takes JSON lines
(as the HTTP backend's sink does, so the sweep keeps no batch of parsed events) and ``sweep-events`` into
one that takes parsed events only (as the metadata database's sink does).
Each measurement runs in a child process of its own, so its peak RSS is its own; DLQ files are generated
in a temporary folder and deleted afterwards. The sandbox runs in this (parent) process: its CPU time and
peak RSS are reported for the sink rows. The machine may be shared, so the table also gives events per
CPU second (the measuring process's own user + system time, plus the sandbox's for the sink rows).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from core.audit import Actor, AuditEvent, LastError, MetadataAuditSink, event_document
from core.dlq import DeadLetterQueue
from core.dlq_sweep import PatternTally, RetryPolicy, replay_file

ROOT = Path(__file__).resolve().parents[1]


def generate(directory: Path, count: int) -> Path:
    """``count`` realistic fallback lines (about 300 bytes each), written in chunks."""
    dlq = DeadLetterQueue(directory)
    start = datetime(2026, 11, 30, tzinfo=UTC)
    chunk: list[AuditEvent] = []
    for n in range(count):
        at = start + timedelta(milliseconds=n)
        chunk.append(
            AuditEvent(
                event_id=str(uuid.UUID(int=n + 1, version=4)),
                occurred_at=at,
                action=("create", "update", "delete")[n % 3],
                resource_type=f"Type{n % 17}",
                resource_id=f"Type{n % 17}/obj-{n}",
                actor=Actor(id=f"u-{n % 101}", username=f"user{n % 101}", kind="user" if n % 5 else "service"),
                details={"fields": ["name", "owner"]},
                enqueued_at=at,
                attempts=1,
                last_error=LastError(type=("ConnectTimeout", "ReadTimeout")[n % 2], message="timed out", at=at),
            )
        )
        if len(chunk) == 10_000:
            dlq.append(chunk)
            chunk = []
    dlq.append(chunk)
    return dlq.path()


class AcceptAllEvents:
    """A sink that stores nothing and accepts everything: what is left is the sweep's own cost. It takes
    parsed events, as the metadata database's sink does (mode ``sweep-events``)."""

    def deliver(self, events: Sequence[AuditEvent]) -> dict[str, str]:
        return {}

    def query(self, **_: Any) -> tuple[list[AuditEvent], str | None]:
        return [], None

    def close(self) -> None:
        pass


class AcceptAll(AcceptAllEvents):
    """The accept-all sink taking JSON lines as well, as the HTTP backend's sink does (a ``JsonLineSink``):
    the sweep hands it the lines it validated (mode ``sweep``, goal (a))."""

    def deliver_json_lines(self, lines: Sequence[bytes], event_ids: Sequence[str]) -> dict[str, str]:
        return {}


def child(mode: str, directory: Path, count: int, url: str | None, meta: str | None) -> dict[str, Any]:
    """One measurement, in this (child) process."""
    started = time.perf_counter()
    cpu_started = _cpu_seconds()
    if mode == "bare":
        seen = 0
        with (directory / "audit_dlq_fallback.jsonl").open("rb") as handle:
            for line in handle:
                json.loads(line)
                seen += 1
        assert seen == count
    elif mode in ("sweep", "sweep-events", "sweep-sink"):
        dlq = DeadLetterQueue(directory)
        sinks = {"sweep": AcceptAll, "sweep-events": AcceptAllEvents}
        sink: Any = sinks[mode]() if mode in sinks else MetadataAuditSink(_settings(url, meta))
        with dlq.claimer() as claimer:
            (claimed,) = claimer.claim()
            outcome = replay_file(claimer, claimed, sink, batch_size=500, retry=RetryPolicy(), tally=PatternTally())
        assert outcome.finished and outcome.counts.replayed == count, outcome
    elif mode == "bulk-sink":
        sink = MetadataAuditSink(_settings(url, meta))
        sink._ensure_ready()
        now = datetime.now(UTC)
        batch: list[dict[str, Any]] = []
        with (directory / "audit_dlq_fallback.jsonl").open("rb") as handle:
            for line in handle:
                batch.append(event_document(AuditEvent.model_validate_json(line), recorded_at=now))
                if len(batch) == 500:
                    _bulk(sink, batch)
                    batch = []
        _bulk(sink, batch)
    else:
        raise SystemExit(f"unknown mode {mode}")
    elapsed = time.perf_counter() - started
    return {
        "mode": mode,
        "events": count,
        "seconds": elapsed,
        "cpu_seconds": _cpu_seconds() - cpu_started,
        "events_per_s": count / elapsed,
        "peak_mib": peak_rss_mib(),
    }


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mib() -> float:
    """This process's peak RSS (VmHWM). Not ``getrusage``'s ru_maxrss: Linux carries that over from the
    parent across exec, so it reported the parent's (here: the sandbox's) size."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _bulk(sink: MetadataAuditSink, docs: list[dict[str, Any]]) -> None:
    if docs:
        sink._gateway.replace_documents(docs, author="bench", message="bulk", create=True, branch="main")


def _settings(url: str | None, meta: str | None) -> Any:
    from core.settings import TerminusSettings, load_settings

    return load_settings(TerminusSettings, url=url or "http://127.0.0.1:6363", meta_database=meta or "bench_meta")


def run_child(
    mode: str, directory: Path, count: int, url: str | None = None, meta: str | None = None
) -> dict[str, Any]:
    args = [sys.executable, __file__, "--child", mode, "--dir", str(directory), "--events", str(count)]
    if url:
        args += ["--url", url, "--meta", meta or ""]
    parent_cpu = _cpu_seconds()  # the sandbox's work, when it serves this child
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=7200, check=False)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    row: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if url:
        row["sandbox_cpu_seconds"] = _cpu_seconds() - parent_cpu
        row["sandbox_peak_mib"] = peak_rss_mib()
    row["load"] = os.getloadavg()[0]
    return row


def fresh(directory: Path, count: int) -> Path:
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    generate(directory, count)
    return directory


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--small-events", type=int, default=100_000)
    parser.add_argument("--sink-events", type=int, default=20_000)
    parser.add_argument("--child")
    parser.add_argument("--dir", type=Path)
    parser.add_argument("--url")
    parser.add_argument("--meta")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.dir, args.events, args.url, args.meta)))
        return

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-dlq-") as tmp:
        root = Path(tmp)
        for count in (args.small_events, args.events):
            directory = fresh(root / "dlq", count)
            size_mb = (directory / "audit_dlq_fallback.jsonl").stat().st_size / 1e6
            bare = run_child("bare", directory, count)
            sweep = run_child("sweep", directory, count)  # consumes the file
            directory = fresh(root / "dlq", count)
            sweep_events = run_child("sweep-events", directory, count)
            rows += [dict(row, file_mb=size_mb) for row in (bare, sweep, sweep_events)]
        if args.sink_events <= 0:  # (b) takes minutes at 1M events: --sink-events 0 skips it
            _print(rows, args)
            return
        from sandbox.server import SandboxServer

        with SandboxServer() as sandbox:
            meta = f"bench_{uuid.uuid4().hex[:8]}"
            directory = fresh(root / "dlq", args.sink_events)
            bulk = run_child("bulk-sink", directory, args.sink_events, sandbox.url, meta + "_bulk")
            sandbox.app.store.delete("admin", meta + "_bulk")  # one event database in memory at a time
            gc.collect()
            sweep_sink = run_child("sweep-sink", directory, args.sink_events, sandbox.url, meta + "_sweep")
            rows += [bulk, sweep_sink]
    _print(rows, args)


def _print(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print(
        "| mode | events | file MB | seconds | events/s | CPU s | events per CPU s | peak RSS MiB "
        "| sandbox peak RSS MiB | load after |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        size = f"{row['file_mb']:.0f}" if "file_mb" in row else "-"
        cpu = row["cpu_seconds"] + row.get("sandbox_cpu_seconds", 0.0)
        sandbox_rss = f"{row['sandbox_peak_mib']:.0f}" if "sandbox_peak_mib" in row else "-"
        print(
            f"| {row['mode']} | {row['events']:,} | {size} | {row['seconds']:.1f} | {row['events_per_s']:,.0f} | "
            f"{cpu:.1f} | {row['events'] / cpu:,.0f} | {row['peak_mib']:.0f} | {sandbox_rss} | {row['load']:.1f} |"
        )
    by = {(r["mode"], r["events"]): r for r in rows}
    big, small, sink = args.events, args.small_events, args.sink_events
    print()
    print(
        f"(a) sweep / bare at {big:,}: {by['sweep', big]['events_per_s'] / by['bare', big]['events_per_s']:.0%} "
        f"(per CPU second: {_per_cpu(by['sweep', big]) / _per_cpu(by['bare', big]):.0%}); "
        f"into a sink that takes parsed events: "
        f"{by['sweep-events', big]['events_per_s'] / by['bare', big]['events_per_s']:.0%} "
        f"(per CPU second: {_per_cpu(by['sweep-events', big]) / _per_cpu(by['bare', big]):.0%})"
    )
    if ("sweep-sink", sink) in by:
        print(
            f"(b) sweep / bulk insert into the sandbox at {sink:,}: "
            f"{by['sweep-sink', sink]['events_per_s'] / by['bulk-sink', sink]['events_per_s']:.0%} "
            "(per CPU second, sandbox included: "
            f"{_per_cpu(by['sweep-sink', sink]) / _per_cpu(by['bulk-sink', sink]):.0%})"
        )
    for mode in ("sweep", "sweep-events"):
        print(
            f"(c) peak RSS of {mode}: {by[mode, small]['peak_mib']:.0f} MiB at {small:,}, "
            f"{by[mode, big]['peak_mib']:.0f} MiB at {big:,} "
            f"({by[mode, big]['peak_mib'] / by[mode, small]['peak_mib']:.2f}x)"
        )


def _per_cpu(row: dict[str, Any]) -> float:
    return float(row["events"]) / (row["cpu_seconds"] + row.get("sandbox_cpu_seconds", 0.0))


if __name__ == "__main__":
    main()
