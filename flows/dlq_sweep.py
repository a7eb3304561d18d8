"""The nightly DLQ sweep: drain the audit dead-letter queue into the audit sink, tell Prometheus how the
DLQ looks, and page someone when it grows or ages (DESIGN §4 and §6; the guide's "DLQ Growing Rapidly").

Runs as ``oms-audit dlq sweep --env ENV``. Several sweeps may run at once (the claim decides who replays a
file). The run ends Completed, or Failed with a state named after what went wrong and a message saying
what to do: ``AuditSinkUnavailable`` (files stay claimed for the next sweep), ``MetricsPushFailed`` or
``AlertDeliveryFailed`` (the replay itself is complete). No outcome loses DLQ data.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.states import Completed, Failed, State

from core.dlq import ClaimedFile, DeadLetterQueue
from core.dlq_sweep import FileOutcome, PatternTally, SweepCounts, stats_summary
from core.errors import AlertDeliveryFailed, AuditSinkUnavailable, MetricsPushFailed, OmsAuditError
from core.monitoring.audit_metrics import SweepResult
from tasks.dlq_tasks import (
    SweepProgress,
    claim_dlq_files,
    inspect_dlq_files,
    notify_dlq_alerts,
    now_utc,
    open_sink,
    publish_sweep_summary,
    push_dlq_metrics,
    recover_claimed_files,
    replay_claimed_file,
    sweep_plan,
)


@flow(name="oms-audit-dlq-sweep", flow_run_name="dlq-sweep-{env}")
def dlq_sweep(
    env: str = "local",
    dlq_dir: str | None = None,
    batch_size: int | None = None,
    max_attempts: int | None = None,
    dry_run: bool = False,
) -> State[Any]:
    """Replay audit_dlq_fallback*.jsonl into the audit sink, push DLQ metrics, notify alert changes.

    Args:
        env: environment (Prefect block of that name, else the environment variables).
        dlq_dir: the DLQ folder (default OMS_AUDIT_DLQ_DIR).
        batch_size: events per sink call (default OMS_AUDIT_DLQ_BATCH_SIZE, 500).
        max_attempts: failed deliveries before an event goes to poison (default 5).
        dry_run: report what a sweep would find; change nothing (no replay, no push, no alert).
    """
    started, clock = now_utc(), time.monotonic()
    plan = sweep_plan(env, dlq_dir, batch_size, max_attempts)
    dlq = DeadLetterQueue(Path(plan.dlq_dir), fsync=plan.fsync)
    dlq.check_writable() if not dry_run else dlq.check_readable()
    run_id = str(flow_run.get_id() or uuid.uuid4())
    tally = PatternTally()
    report: dict[str, Any] = {"run_id": run_id, "env": env, "dlq_dir": plan.dlq_dir, "dry_run": dry_run}
    report["started_at"] = started.isoformat()

    if dry_run:
        counts = inspect_dlq_files(dlq, tally)
        return _finish(report, counts, dlq, tally, clock, problems=[], outcomes=[])

    outcomes: list[FileOutcome] = []
    with dlq.claimer(run_id) as claimer:
        files: list[ClaimedFile] = recover_claimed_files(claimer) + claim_dlq_files(claimer)
        progress = SweepProgress(total_bytes=sum(f.size - f.start_offset for f in files))
        progress.start()
        sink = open_sink(env)
        try:
            for claimed in files:
                outcome = replay_claimed_file(claimer, claimed, sink, plan, tally, progress)
                outcomes.append(outcome)
                if outcome.sink_error:
                    break  # the rest stay claimed at their checkpoints; the next sweep adopts them
        finally:
            sink.close()
    counts = SweepCounts()
    for outcome in outcomes:
        counts.add(outcome.counts)
    progress.advance(progress.total_bytes, counts, force=True)

    problems: list[OmsAuditError] = []
    sink_error = next((o.sink_error for o in outcomes if o.sink_error), None)
    if sink_error:
        problems.append(AuditSinkUnavailable("the audit sink", reason=sink_error))
    result = SweepResult(
        replayed=counts.replayed,
        requeued=counts.requeued,
        poisoned=counts.poisoned,
        corrupt=counts.corrupt,
        duration_seconds=time.monotonic() - clock,
        succeeded=not sink_error,
    )
    try:
        report["metrics_push"] = push_dlq_metrics(dlq, env, result)
    except MetricsPushFailed as exc:
        get_run_logger().error("%s", exc)
        report["metrics_push"] = "failed"
        problems.append(exc)
    report["alerts"], alert_error = notify_dlq_alerts(dlq, env)
    if alert_error:
        get_run_logger().error("%s", alert_error)
        problems.append(AlertDeliveryFailed(reason=alert_error.split("(", 1)[-1].split(")", 1)[0]))
    return _finish(report, counts, dlq, tally, clock, problems=problems, outcomes=outcomes)


def _finish(
    report: dict[str, Any],
    counts: SweepCounts,
    dlq: DeadLetterQueue,
    tally: PatternTally,
    clock: float,
    *,
    problems: list[OmsAuditError],
    outcomes: list[FileOutcome],
) -> State[Any]:
    """Publish the summary and end in a state named after the first problem (Completed when none)."""
    report.update(
        status=type(problems[0]).__name__ if problems else "Completed",
        finished_at=now_utc().isoformat(),
        duration_seconds=round(time.monotonic() - clock, 3),
        counts=counts.as_dict(),
        files=[{"source": o.source, "finished": o.finished, **o.counts.as_dict()} for o in outcomes],
        stats_after=stats_summary(dlq),
        patterns=tally.records(),
        problems=[str(p) for p in problems],
    )
    report.setdefault("metrics_push", "skipped (dry run)" if report["dry_run"] else "n/a")
    publish_sweep_summary(report)
    if not problems:
        return Completed(message=_one_line(counts, report), data=report)
    first = problems[0]
    message = " ".join(str(p) for p in problems)
    return Failed(name=type(first).__name__, message=message, data=first)


def _one_line(counts: SweepCounts, report: dict[str, Any]) -> str:
    what = "would replay" if report["dry_run"] else "replayed"
    return (
        f"{what} {counts.replayed}, re-queued {counts.requeued}, poisoned {counts.poisoned}, corrupt {counts.corrupt}"
    )
