"""The run's footprint in the metadata database: its ``MigrationRun`` history record and the lease.

The report is the run's single source of truth in memory; the history record is written from it whole, so
the two never disagree. A history write that fails after patching began is logged, not fatal: the schema
change must not be abandoned half-way because bookkeeping hiccuped (the JSON report still has everything).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from prefect import get_run_logger

from blocks.environment import resolve_terminus
from core.errors import OmsAuditError, RollbackRefused, SchemaDrift, StaleApproval
from core.metadata_db import ensure_metadata_db, metadata_gateway
from core.migration_lease import LeaseKeeper
from core.migration_report import MigrationReport, RollbackReport
from core.run_history import MigrationRunRecord, RunMode, RunStatus, record_run

from .terminus_target import Target, open_gateway

LEASE_TTL_SECONDS = 300.0
STOPPED_ERRORS = {cls.__name__ for cls in (SchemaDrift, StaleApproval, RollbackRefused)}


def run_status(report: MigrationReport | RollbackReport) -> RunStatus:
    if report.approval.timed_out:
        return "timed_out"
    if report.status == "failed" and report.errors and report.errors[-1].type in STOPPED_ERRORS:
        return "stopped"
    return report.status


def history_record(report: MigrationReport | RollbackReport, report_path: str | None) -> MigrationRunRecord:
    if isinstance(report, MigrationReport):
        fingerprint = report.plan.fingerprint if report.plan else ""
        states = {t.name: t.state for t in report.plan.types if t.state != "not_applicable"} if report.plan else {}
        mode: RunMode = report.mode
    else:
        fingerprint, mode = "", "rollback"
        states = {name: ("applied" if report.status == "succeeded" else "pending") for name in report.removals}
    return MigrationRunRecord(
        run_id=report.run_id,
        database=report.database,
        branch=report.branch,
        mode=mode,
        status=run_status(report),
        triggered_by=report.triggered_by or "unknown",
        approved_by=report.approval.approver if report.approval.decision == "approve" else None,
        approval_comment=report.approval.comment,
        fingerprint=fingerprint,
        head_commit_before=report.head_commit_before,
        head_commit_after=report.head_commit_after,
        type_states=states,
        report_path=report_path,
        started_at=report.started_at,
        finished_at=report.finished_at,
        error=f"{report.errors[-1].type}: {report.errors[-1].message}" if report.errors else None,
    )


class RunTracker:
    """Writes the history record of one run; created once per flow run."""

    def __init__(self, target: Target, report: MigrationReport | RollbackReport, report_path: str) -> None:
        self.target = target
        self.report = report
        self.report_path = report_path
        self._ready = False

    def record(self) -> None:
        settings = resolve_terminus(self.target.env).settings
        try:
            with metadata_gateway(settings) as gateway:
                if not self._ready:
                    ensure_metadata_db(gateway, settings)
                    self._ready = True
                record_run(gateway, history_record(self.report, self.report_path))
        except OmsAuditError as exc:
            get_run_logger().warning("Could not update the run history (%s); the JSON report has everything", exc)

    def head_commit(self) -> str | None:
        try:
            with open_gateway(self.target) as gateway:
                return gateway.head_commit()
        except OmsAuditError as exc:
            get_run_logger().warning("Could not read the head commit after the run: %s", exc)
            return None


@contextmanager
def migration_lease(target: Target, *, run_id: str, owner: str) -> Iterator[LeaseKeeper]:
    """Hold the database's migration lease for the block; raises LeaseHeld naming the current holder."""
    settings = resolve_terminus(target.env).settings
    with metadata_gateway(settings) as gateway:
        ensure_metadata_db(gateway, settings)
    keeper = LeaseKeeper.acquire(
        lambda: metadata_gateway(settings),
        database=target.database,
        owner=owner,
        run_id=run_id,
        ttl_seconds=LEASE_TTL_SECONDS,
    )
    with keeper:
        get_run_logger().info("Holding the migration lease on %s", target.database)
        yield keeper
